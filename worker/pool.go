package worker

import (
	"context"
	"fmt"
	"sync"
)

// gpuPool hands out a worker's GPU indices; no index is held by two jobs.
type gpuPool struct {
	mu      sync.Mutex
	free    []bool // free[i]: GPU i is free
	changed chan struct{}
}

func newGPUPool(n int) *gpuPool {
	p := &gpuPool{free: make([]bool, n), changed: make(chan struct{})}
	for i := range p.free {
		p.free[i] = true
	}
	return p
}

// acquire takes n GPUs, waiting until enough are free or ctx ends.
func (p *gpuPool) acquire(ctx context.Context, n int) ([]int, error) {
	if n > len(p.free) {
		return nil, fmt.Errorf("acquire %d gpus: this worker has %d", n, len(p.free))
	}
	for {
		p.mu.Lock()
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
			p.mu.Unlock()
			return got, nil
		}
		wait := p.changed
		p.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, fmt.Errorf("acquire %d gpus: %w", n, ctx.Err())
		}
	}
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
