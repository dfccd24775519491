package planning_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/policy"
)

// running is an interruptible 3 h job in region a, released at t0 and
// running since t0 in one planned window.
func running(id string, edit ...func(*greenq.Job)) *greenq.Job {
	return job(id, append([]func(*greenq.Job){func(j *greenq.Job) {
		j.Interruptible, j.State, j.DurationEstimateS = true, greenq.StateRunning, 3*3600
		j.Plan = &greenq.Plan{Region: "a", Start: t0, End: t0.Add(3 * time.Hour)}
		j.Run = &greenq.Run{Region: "a", StartedAt: t0}
	}}, edit...)...)
}

func TestPauses(t *testing.T) {
	t.Parallel()
	p := planning.New(policy.Config{Slot: 15 * time.Minute})
	cases := []struct {
		name  string
		job   *greenq.Job
		now   time.Duration // after t0
		dip   []int         // cheap hours of region a
		pause bool
	}{
		{"cheaper hours ahead", running("j"), time.Hour, []int{10, 11}, true},
		{"the cheap hours are now", running("j"), time.Hour, []int{1, 2}, false},
		{"not interruptible", running("j", func(j *greenq.Job) { j.Interruptible = false }), time.Hour, []int{10, 11}, false},
		{"has run less than a segment", running("j"), 20 * time.Minute, []int{10, 11}, false},
		{"running past its plan", running("j"), 3*time.Hour + time.Minute, []int{10, 11}, false},
		{"no slack to wait", running("j", func(j *greenq.Job) { j.Deadline = t0.Add(3*time.Hour + 10*time.Minute) }),
			time.Hour, []int{10, 11}, false},
		{"started late in its window", running("j", func(j *greenq.Job) { j.Run.StartedAt = t0.Add(7 * time.Minute) }),
			time.Hour, []int{1, 2}, false},
		{"a later window of its plan is the cheap one", running("j", func(j *greenq.Job) {
			j.Plan.Segments = []greenq.Window{{Start: t0, End: t0.Add(time.Hour + 30*time.Minute)},
				{Start: t0.Add(10 * time.Hour), End: t0.Add(11*time.Hour + 30*time.Minute)}}
		}), time.Hour, []int{10, 11}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			regions := []planning.Region{{Series: series("a", "file", c.dip...),
				HasSeries: true, Live: true, Active: []*greenq.Job{c.job}, Config: greenq.Region{Name: "a", PUE: 1, Capacity: 1}}}
			got := p.Pauses(t0.Add(c.now), []*greenq.Job{c.job}, regions)
			if c.pause {
				require.Equal(t, []string{"j"}, got)
			} else {
				require.Empty(t, got)
			}
		})
	}
}
