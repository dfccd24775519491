package worker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
)

// logStoreFor returns a store on a unique prefix keeping logBytes of each
// log, and a job in it.
func logStoreFor(t *testing.T, logBytes int) (*queue.Store, string) {
	t.Helper()
	rdb := redistest.Client(t)
	region := redistest.Unique("r")
	s, err := queue.NewStore(rdb, queue.Config{Prefix: redistest.Unique("wl"), LogBytes: logBytes,
		Regions: []greenq.Region{{Name: region, Zone: "Z", PUE: 1}}})
	require.NoError(t, err)
	jobs, err := s.Submit(context.Background(), "alice",
		greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", DurationEstimateS: 60})
	require.NoError(t, err)
	return s, jobs[0].ID
}

var cutLine = regexp.MustCompile(`(?m)^… (\d+) bytes cut …\n`)

// requireHeadCutTail checks that got is a prefix of all that ends a line,
// the cut marker with exactly the bytes missing, and a suffix of all that
// starts a line.
func requireHeadCutTail(t *testing.T, all, got []byte) {
	t.Helper()
	locs := cutLine.FindAllSubmatchIndex(got, -1)
	require.Len(t, locs, 1, "one cut marker in:\n%s", got)
	n, err := strconv.Atoi(string(got[locs[0][2]:locs[0][3]]))
	require.NoError(t, err)
	head, tail := got[:locs[0][0]], got[locs[0][1]:]
	require.True(t, bytes.HasPrefix(all, head), "the head is the output as written first")
	require.True(t, bytes.HasSuffix(all, tail), "the tail is the latest output")
	require.True(t, bytes.HasSuffix(head, []byte("\n")), "the head ends a line")
	require.Equal(t, byte('\n'), all[len(all)-len(tail)-1], "the tail starts a line")
	require.Equal(t, len(all)-len(head)-len(tail), n, "the marker counts exactly the bytes cut")
	require.Positive(t, n)
}

func sinkLines(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("step %05d loss=%s\n", i, strings.Repeat("9", i%11))
	}
	return out
}

func TestLogSinkKeepsHeadAndTail(t *testing.T) {
	t.Parallel()
	store, id := logStoreFor(t, 4000)
	sink := newLogSink(store, id, 64<<10, slog.New(slog.DiscardHandler))
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() { defer close(stopped); sink.run(done) }()
	var all bytes.Buffer
	written := sinkLines(2000)
	for _, l := range written {
		all.WriteString(l)
		_, err := sink.Write([]byte(l))
		require.NoError(t, err)
	}
	close(done)
	<-stopped

	got, err := store.Logs(context.Background(), "alice", id)
	require.NoError(t, err)
	requireHeadCutTail(t, all.Bytes(), got)
	require.True(t, bytes.HasPrefix(got, []byte(written[0])))
	require.True(t, bytes.HasSuffix(got, []byte(written[len(written)-1])))
}

func TestLogSinkDropsTheMiddleWhenBehind(t *testing.T) {
	t.Parallel()
	store, id := logStoreFor(t, 4000)
	sink := newLogSink(store, id, 1000, slog.New(slog.DiscardHandler))
	var all bytes.Buffer
	for _, l := range sinkLines(300) { // far more than the sink holds, before any flush
		all.WriteString(l)
		_, err := sink.Write([]byte(l))
		require.NoError(t, err)
	}
	sink.mu.Lock()
	require.LessOrEqual(t, len(sink.buf)+len(sink.tail), 1000, "the sink stays within its bound")
	sink.mu.Unlock()
	sink.flush()

	l, err := store.LogsFrom(context.Background(), "alice", id, 0)
	require.NoError(t, err)
	require.Equal(t, int64(all.Len()), l.Offset, "dropped bytes are counted, not forgotten")
	requireHeadCutTail(t, all.Bytes(), l.Data)
}

// flakyLogStore fails its first fails appends and records the rest.
type flakyLogStore struct {
	fails int
	calls []string
	log   bytes.Buffer
}

func (f *flakyLogStore) AppendLog(ctx context.Context, id string, p []byte) error {
	return f.AppendLogCut(ctx, id, p, 0, nil)
}

func (f *flakyLogStore) AppendLogCut(_ context.Context, _ string, p []byte, lost int64, q []byte) error {
	f.calls = append(f.calls, fmt.Sprintf("%q %d %q", p, lost, q))
	if f.fails > 0 {
		f.fails--
		return errors.New("redis is down")
	}
	f.log.Write(p)
	if lost > 0 {
		f.log.WriteString(queue.CutMarker(lost))
	}
	f.log.Write(q)
	return nil
}

func TestLogSinkCountsWhatAFailedAppendLost(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		fails  int
		writes []string // each followed by a flush
		want   string
	}{
		{name: "store up", writes: []string{"a\n", "b\n"}, want: "a\nb\n"},
		{name: "one failed append", fails: 1, writes: []string{"lost\n", "kept\n"}, want: queue.CutMarker(5) + "kept\n"},
		{name: "failures add up", fails: 2, writes: []string{"one\n", "two\n", "three\n"}, want: queue.CutMarker(8) + "three\n"},
		{name: "failed last append", fails: 1, writes: []string{"gone\n", ""}, want: queue.CutMarker(5)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs := &flakyLogStore{fails: tt.fails}
			sink := newLogSink(fs, "job", 1000, slog.New(slog.DiscardHandler))
			for _, w := range tt.writes {
				_, _ = sink.Write([]byte(w))
				sink.flush()
			}
			require.Equal(t, tt.want, fs.log.String(), "calls: %v", fs.calls)
		})
	}
}
