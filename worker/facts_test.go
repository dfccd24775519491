package worker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/queue"
)

// factsStore is a fakeStore that also shares region facts, as
// queue.Store does.
type factsStore struct {
	*fakeStore
	mu    sync.Mutex
	facts *queue.RegionFacts
	reads int
}

func (s *factsStore) SharedRegions(context.Context) (queue.RegionFacts, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads++
	if s.facts == nil {
		return queue.RegionFacts{}, false, nil
	}
	return *s.facts, true, nil
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestRegionFactsWinOverOwnConfig runs jobs on a worker whose own config
// says PUE 1.0 while the server's region configuration says 1.2: every
// receipt has 1.2, and the disagreement is logged once.
func TestRegionFactsWinOverOwnConfig(t *testing.T) {
	t.Parallel()
	fs := &factsStore{fakeStore: newFakeStore()}
	var logs syncBuffer
	clock := &testClock{t: time.Now()}
	w, err := New(Config{
		Region: testRegion, GPUs: 1, ID: "w1", Grace: 5 * time.Second, Meter: &EstimateMeter{},
		SysRoot: t.TempDir(), CheckpointRoot: t.TempDir(), OutputRoot: t.TempDir(), WorkRoot: t.TempDir(),
		PUE: map[string]float64{testRegion: 1.0}, Now: clock.now,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	}, fs, nil)
	require.NoError(t, err)
	defer w.Close()
	b := bundle{w: w, fs: fs.fakeStore, ctx: context.Background()}
	run := func() greenq.Receipt {
		id := b.submit(t, greenq.Job{Command: []string{"true"}, DurationEstimateS: 1})
		require.NoError(t, w.ProcessTask(context.Background(), task(id)))
		return *b.waitFinish(t).f.Receipt
	}

	// Nothing shared yet: the worker's own config, said once.
	require.Equal(t, 1.0, run().PUE)
	require.Contains(t, logs.String(), "has not shared its region configuration")

	fs.mu.Lock()
	fs.facts = &queue.RegionFacts{Regions: []greenq.Region{{Name: testRegion, PUE: 1.2, GPUPriceUSDPerHour: 3}}}
	fs.mu.Unlock()
	clock.set(clock.now().Add(time.Minute)) // past the facts' cache
	for range 3 {
		rc := run()
		require.Equal(t, 1.2, rc.PUE, "the server's PUE")
		require.InDelta(t, rc.GPUHours*3, rc.CostUSD, 1e-12, "the server's price")
		clock.set(clock.now().Add(time.Minute))
	}
	require.Equal(t, 1, strings.Count(logs.String(), "disagrees with the server's region configuration"), logs.String())
	require.Contains(t, logs.String(), "field=pue worker=1 server=1.2")
}
