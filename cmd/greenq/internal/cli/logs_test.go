package cli

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/api"
	"github.com/greenq/greenq/internal/redistest"
	"github.com/greenq/greenq/queue"
)

// logAPI serves GET /v1/jobs/job-1/logs?offset= like the API: each read
// first lets the job write its next chunk, and the job ends after the last.
type logAPI struct {
	mu      sync.Mutex
	chunks  []string // written one per read
	log     []byte
	final   bool
	offsets []int64       // offsets asked for
	polled  chan struct{} // when set, each read reports here and the job never ends
}

func (f *logAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.URL.Path != "/v1/jobs/job-1/logs" {
		http.NotFound(w, r)
		return
	}
	off, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	f.offsets = append(f.offsets, off)
	if len(f.chunks) > 0 {
		f.log = append(f.log, f.chunks[0]...)
		f.chunks = f.chunks[1:]
	} else if f.polled == nil {
		f.final = true
	}
	w.Header().Set(api.HeaderLogOffset, strconv.Itoa(len(f.log)))
	w.Header().Set(api.HeaderJobFinal, strconv.FormatBool(f.final))
	_, _ = w.Write(f.log[off:])
	if f.polled != nil {
		select {
		case f.polled <- struct{}{}:
		case <-r.Context().Done():
		}
	}
}

func TestLogsFollowPrintsUntilTheJobEnds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		chunks []string
	}{
		{"output in steps", []string{"epoch 1\n", "", "epoch 2\n", "epoch 3 loss=0.1", "2\n"}},
		{"no output", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &logAPI{chunks: tt.chunks}
			srv := httptest.NewServer(f)
			defer srv.Close()
			code, out, stderr := run(t, srv.URL, "logs", "-f", "job-1")
			require.Equal(t, 0, code, stderr)
			require.Equal(t, strings.Join(tt.chunks, ""), out, "every byte printed once, in order")
			f.mu.Lock()
			defer f.mu.Unlock()
			require.True(t, f.final)
			require.Len(t, f.offsets, len(tt.chunks)+1, "one read per chunk, then the one that saw the end")
			var want int64
			for i, c := range tt.chunks {
				require.Equal(t, want, f.offsets[i], "read %d asks from what was printed", i)
				want += int64(len(c))
			}
		})
	}
}

func TestLogsFollowStopsCleanlyOnInterrupt(t *testing.T) {
	t.Parallel()
	f := &logAPI{chunks: []string{"still running\n"}, polled: make(chan struct{})}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() { done <- Main(ctx, []string{"--api", srv.URL, "logs", "-f", "job-1"}, &out, &errb) }()
	<-f.polled // the first read
	<-f.polled // the second, after the first was printed
	cancel()   // Ctrl-C
	require.Equal(t, 0, <-done, errb.String())
	require.Equal(t, "still running\n", out.String())
}

func TestLogsWithoutFollowPrintsOnce(t *testing.T) {
	t.Parallel()
	f := &logAPI{chunks: []string{"all there is\n"}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	code, out, stderr := run(t, srv.URL, "logs", "job-1")
	require.Equal(t, 0, code, stderr)
	require.Equal(t, "all there is\n", out)
}

var cutMarker = regexp.MustCompile(`(?m)^… (\d+) bytes cut …\n`)

// TestLogsFollowThroughACut runs logs -f against the real API and store:
// the job writes while it is followed, the log is cut between two reads,
// and the stream says so with the exact count.
func TestLogsFollowThroughACut(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	region := redistest.Unique("r")
	store, err := queue.NewStore(rdb, queue.Config{Prefix: redistest.Unique("cl"), LogBytes: 1000,
		Regions: []greenq.Region{{Name: region, Zone: "Z", PUE: 1}}})
	require.NoError(t, err)
	srvAPI, err := api.New(api.Config{RatePerSecond: -1}, store)
	require.NoError(t, err)
	// Each read of the log waits for allow and reports served, so the
	// job's writes fall between reads.
	allow, served := make(chan struct{}), make(chan struct{})
	h := srvAPI.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/logs") {
			h.ServeHTTP(w, r)
			return
		}
		<-allow
		h.ServeHTTP(w, r)
		served <- struct{}{}
	}))
	defer srv.Close()
	ctx := context.Background()
	jobs, err := store.Submit(ctx, api.LocalTenant, greenq.SubmitRequest{Command: []string{"train"}, Deadline: "24h", DurationEstimateS: 60})
	require.NoError(t, err)
	id := jobs[0].ID

	var out, errb bytes.Buffer
	done := make(chan int)
	go func() { done <- Main(ctx, []string{"--api", srv.URL, "logs", "-f", id}, &out, &errb) }()
	var all bytes.Buffer
	batch := func(from, n int) {
		for i := from; i < from+n; i++ {
			line := fmt.Sprintf("step %04d\n", i)
			all.WriteString(line)
			require.NoError(t, store.AppendLog(ctx, id, []byte(line)))
		}
	}
	read := func() {
		allow <- struct{}{}
		<-served
	}
	batch(0, 30) // 300 bytes: all in the head
	read()
	batch(30, 30) // the head fills and the tail starts
	read()
	batch(60, 300) // the tail moves on past what was read
	read()
	batch(360, 2)
	read()
	_, err = store.Cancel(ctx, api.LocalTenant, id)
	require.NoError(t, err)
	for {
		select {
		case allow <- struct{}{}:
			<-served
		case code := <-done:
			require.Equal(t, 0, code, errb.String())
			got := out.Bytes()
			locs := cutMarker.FindAllSubmatchIndex(got, -1)
			require.Len(t, locs, 1, "one cut, said once:\n%s", got)
			n, err := strconv.Atoi(string(got[locs[0][2]:locs[0][3]]))
			require.NoError(t, err)
			before, after := got[:locs[0][0]], got[locs[0][1]:]
			require.Equal(t, all.Bytes()[:600], before, "what was read before the cut, once")
			require.True(t, bytes.HasSuffix(all.Bytes(), after), "the latest output after the marker")
			require.Equal(t, all.Len(), len(before)+n+len(after), "the marker counts exactly the bytes never printed")
			require.True(t, bytes.HasSuffix(got, []byte("step 0361\n")))
			return
		}
	}
}
