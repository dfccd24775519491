package worker

import (
	"context"
	"fmt"
	"slices"
	"sync"
)

// gpuPool hands out a worker's GPU indices; no index is held by two jobs.
// Requests are served first come, first served: a request waiting for
// more GPUs than are free holds back later ones, so a stream of small jobs
// cannot starve a large one by taking each GPU as it frees.
type gpuPool struct {
	mu      sync.Mutex
	free    []bool // free[i]: GPU i is free
	changed chan struct{}
	waiting []uint64 // tickets of waiting requests, oldest first
	ticket  uint64   // the last ticket handed out
}

func newGPUPool(n int) *gpuPool {
	p := &gpuPool{free: make([]bool, n), changed: make(chan struct{})}
	for i := range p.free {
		p.free[i] = true
	}
	return p
}

// acquire takes n GPUs, waiting until enough are free and every earlier
// request has been served, or until ctx ends.
func (p *gpuPool) acquire(ctx context.Context, n int) ([]int, error) {
	if n > len(p.free) {
		return nil, fmt.Errorf("acquire %d gpus: this worker has %d", n, len(p.free))
	}
	if n <= 0 {
		return nil, nil
	}
	p.mu.Lock()
	p.ticket++
	me := p.ticket
	p.waiting = append(p.waiting, me)
	p.mu.Unlock()
	for {
		p.mu.Lock()
		if p.waiting[0] == me {
			var got []int
			for i, f := range p.free {
				if f && len(got) < n {
					got = append(got, i)
				}
			}
			if len(got) == n {
				for _, i := range got {
					p.free[i] = false
				}
				p.leave(me)
				p.mu.Unlock()
				return got, nil
			}
		}
		wait := p.changed
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			p.mu.Lock()
			p.leave(me)
			p.mu.Unlock()
			return nil, fmt.Errorf("acquire %d gpus: %w", n, ctx.Err())
		}
	}
}

// leave takes ticket t off the waiting list and wakes the others: the next
// one may be first now. p.mu is held.
func (p *gpuPool) leave(t uint64) {
	if i := slices.Index(p.waiting, t); i >= 0 {
		p.waiting = slices.Delete(p.waiting, i, i+1)
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// release gives GPUs back.
func (p *gpuPool) release(idx []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, i := range idx {
		if p.free[i] {
			panic(fmt.Sprintf("worker: gpu %d released twice", i))
		}
		p.free[i] = true
	}
	close(p.changed)
	p.changed = make(chan struct{})
}

// busy returns the number of GPUs held.
func (p *gpuPool) busy() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, f := range p.free {
		if !f {
			n++
		}
	}
	return n
}
