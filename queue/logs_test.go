package queue

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

var markerRE = regexp.MustCompile(`(?m)^… (\d+) bytes cut …\n`)

// splitLog checks that got is all of the output written, or a prefix of it,
// one cut marker on its own line and a suffix of it, with the marker's
// count exactly the bytes between them; it returns head, count and tail.
func splitLog(t *testing.T, all, got []byte) (head []byte, n int, tail []byte) {
	t.Helper()
	locs := markerRE.FindAllSubmatchIndex(got, -1)
	if len(locs) == 0 {
		require.Equal(t, string(all), string(got), "a log without a cut marker is the whole output")
		return got, 0, nil
	}
	require.Len(t, locs, 1, "one cut marker")
	loc := locs[0]
	n, err := strconv.Atoi(string(got[loc[2]:loc[3]]))
	require.NoError(t, err)
	before, tail := got[:loc[0]], got[loc[1]:]
	require.True(t, bytes.HasSuffix(all, tail), "the tail is the latest output")
	// A head that does not end a line gets a newline before the marker.
	for _, h := range [][]byte{before, bytes.TrimSuffix(before, []byte("\n"))} {
		if bytes.HasPrefix(all, h) && len(h)+n+len(tail) == len(all) {
			return h, n, tail
		}
	}
	require.Failf(t, "the cut count is not exact", "head %d + cut %d + tail %d bytes != %d written", len(before), n, len(tail), len(all))
	return nil, 0, nil
}

func lines(n int, width func(i int) int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("line %05d %s\n", i, strings.Repeat("x", width(i)))
	}
	return out
}

func TestLogKeepsHeadAndTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		bytes  int      // Config.LogBytes
		writes []string // one AppendLog each
		cut    bool     // a marker is expected
		byLine bool     // head ends and tail starts on whole lines
	}{
		{name: "short log kept whole", bytes: 1000, writes: lines(20, func(i int) int { return i % 7 })},
		{name: "exactly the bound kept whole", bytes: 1000, writes: []string{strings.Repeat("y", 999) + "\n"}},
		{name: "long log in lines", bytes: 1000, writes: lines(300, func(i int) int { return i % 17 }), cut: true, byLine: true},
		{name: "long log in big writes", bytes: 4000, writes: []string{strings.Join(lines(200, func(int) int { return 20 }), ""),
			strings.Join(lines(300, func(int) int { return 5 }), "")}, cut: true, byLine: true},
		{name: "one write larger than both halves", bytes: 1000, writes: []string{strings.Join(lines(400, func(int) int { return 3 }), "")},
			cut: true, byLine: true},
		{name: "no newline near: cut at the byte", bytes: 1000, writes: []string{strings.Repeat("0123456789", 300)}, cut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *Config) { c.LogBytes = tt.bytes })
			ctx := context.Background()
			j := b.submit(t, "alice")
			var all bytes.Buffer
			for _, w := range tt.writes {
				all.WriteString(w)
				require.NoError(t, b.s.AppendLog(ctx, j.ID, []byte(w)))
				hl, err := b.rdb.StrLen(ctx, b.s.k.log(j.ID)).Result()
				require.NoError(t, err)
				require.LessOrEqual(t, hl, int64(tt.bytes/2), "the head stays within its half")
				var tl int64
				chunks, err := b.rdb.LRange(ctx, b.s.k.logTail(j.ID), 0, -1).Result()
				require.NoError(t, err)
				for _, c := range chunks {
					tl += int64(len(c))
				}
				require.LessOrEqual(t, tl, int64(tt.bytes-tt.bytes/2), "the tail stays within its half")
			}
			l, err := b.s.LogsFrom(ctx, "alice", j.ID, 0)
			require.NoError(t, err)
			require.Equal(t, int64(all.Len()), l.Offset, "the offset counts every byte written")
			require.Equal(t, greenq.StatePending, l.State)
			head, n, tail := splitLog(t, all.Bytes(), l.Data)
			require.Equal(t, int64(n), l.Cut)
			require.Equal(t, int64(n), l.Skipped)
			if !tt.cut {
				require.Zero(t, n)
				return
			}
			require.Positive(t, n)
			require.NotEmpty(t, head)
			require.NotEmpty(t, tail)
			if tt.byLine {
				require.True(t, bytes.HasSuffix(head, []byte("\n")), "the head ends a line: %q", head[max(0, len(head)-20):])
				require.Equal(t, byte('\n'), all.Bytes()[all.Len()-len(tail)-1], "the tail starts a line: %q", tail[:min(20, len(tail))])
				require.Greater(t, len(head), tt.bytes/2-logNear, "the head is cut near its bound")
			} else {
				require.Len(t, head, tt.bytes/2)
				require.Len(t, tail, tt.bytes-tt.bytes/2)
			}
			plain, err := b.s.Logs(ctx, "alice", j.ID)
			require.NoError(t, err)
			require.Equal(t, l.Data, plain)
		})
	}
}

func TestLogsFromFollows(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config) { c.LogBytes = 1000 })
	ctx := context.Background()
	j := b.submit(t, "alice")
	var all, seen bytes.Buffer
	var off int64
	read := func() *Log {
		t.Helper()
		l, err := b.s.LogsFrom(ctx, "alice", j.ID, off)
		require.NoError(t, err)
		seen.Write(l.Data)
		off = l.Offset
		return l
	}
	write := func(ls []string) {
		t.Helper()
		for _, s := range ls {
			all.WriteString(s)
			require.NoError(t, b.s.AppendLog(ctx, j.ID, []byte(s)))
		}
	}

	// Before any cut a follower sees every byte once.
	write(lines(10, func(int) int { return 10 }))
	require.Zero(t, read().Skipped)
	write(lines(10, func(int) int { return 30 }))
	require.Zero(t, read().Skipped)
	require.Equal(t, all.String(), seen.String())
	require.Empty(t, read().Data, "nothing new at the end")

	// Output the follower has not read is cut: the next read says how much.
	atCut := all.Len()
	write(lines(100, func(int) int { return 20 }))
	l := read()
	require.Positive(t, l.Skipped)
	head, n, tail := splitLog(t, all.Bytes()[atCut:], l.Data)
	require.Empty(t, head)
	require.Equal(t, int64(n), l.Skipped)
	require.Equal(t, all.Len()-atCut-n, len(tail))
	require.Equal(t, int64(all.Len()), off)

	// And it follows on from there.
	write([]string{"after the cut\n"})
	require.Equal(t, "after the cut\n", string(read().Data))

	// A reader from the start gets head, the whole cut and the tail.
	full, err := b.s.LogsFrom(ctx, "alice", j.ID, 0)
	require.NoError(t, err)
	_, n, _ = splitLog(t, all.Bytes(), full.Data)
	require.Equal(t, full.Cut, int64(n))

	for _, bad := range []int64{-1, int64(all.Len()) + 1} {
		_, err := b.s.LogsFrom(ctx, "alice", j.ID, bad)
		requireCode(t, err, greenq.CodeInvalidArgument)
		var ge *greenq.Error
		require.ErrorAs(t, err, &ge)
		require.Equal(t, "offset", ge.Field)
	}
	_, err = b.s.LogsFrom(ctx, "bob", j.ID, 0)
	require.ErrorIs(t, err, greenq.ErrNotFound)
}

func TestAppendLogCutCountsLostOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		before  string // written first
		p, q    string
		lost    int64
		wantCut int64
		want    string // Logs
	}{
		{name: "loss while the head is open seals it", before: "one\ntwo\n", p: "three\n", lost: 100, q: "four\nfive\n",
			wantCut: 100 + 5, want: "one\ntwo\nthree\n" + CutMarker(105) + "five\n"},
		{name: "loss with nothing after", p: "a\n", lost: 7, wantCut: 7, want: "a\n" + CutMarker(7)},
		{name: "no loss is a plain append", p: "a\n", q: "b\n", want: "a\nb\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *Config) { c.LogBytes = 1000 })
			ctx := context.Background()
			j := b.submit(t, "alice")
			require.NoError(t, b.s.AppendLog(ctx, j.ID, []byte(tt.before)))
			require.NoError(t, b.s.AppendLogCut(ctx, j.ID, []byte(tt.p), tt.lost, []byte(tt.q)))
			l, err := b.s.LogsFrom(ctx, "alice", j.ID, 0)
			require.NoError(t, err)
			require.Equal(t, tt.want, string(l.Data))
			require.Equal(t, tt.wantCut, l.Cut)
			require.Equal(t, int64(len(tt.before)+len(tt.p)+len(tt.q))+tt.lost, l.Offset)
		})
	}
}
