package planning_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/policy"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// series is region's hourly series over 48 h: 300 gCO2e/kWh, 40 in the
// hours of dip.
func series(region, source string, dip ...int) forecast.Series {
	s := forecast.Series{Region: region, Source: source, Signal: forecast.SignalAverage, IssuedAt: t0}
	for h := range 48 {
		v := 300.0
		for _, d := range dip {
			if h == d {
				v = 40
			}
		}
		st := t0.Add(time.Duration(h) * time.Hour)
		s.Points = append(s.Points, forecast.Point{Start: st, End: st.Add(time.Hour), GCO2PerKWh: v, Kind: forecast.KindForecast})
	}
	return s
}

func job(id string, edit ...func(*greenq.Job)) *greenq.Job {
	j := &greenq.Job{ID: id, State: greenq.StatePending, GPUs: 1, DurationEstimateS: 3600, SubmittedAt: t0,
		Deadline: t0.Add(24 * time.Hour), EstimateSource: greenq.EstimateUser}
	for _, e := range edit {
		e(j)
	}
	return j
}

func TestPolicyJob(t *testing.T) {
	t.Parallel()
	paused := job("p", func(j *greenq.Job) {
		j.Interruptible, j.MaxPriceUSDPerGPUHour = true, 2.5
		j.Segments = []greenq.RunSegment{{Start: t0, End: t0.Add(20 * time.Minute)}}
		j.State = greenq.StatePlanned
		j.Plan = &greenq.Plan{Region: "a", Start: t0.Add(time.Hour), End: t0.Add(100 * time.Minute), ExpectedGCO2: 9}
	})
	pj := planning.PolicyJob(paused)
	require.Equal(t, 40*time.Minute, pj.Duration, "what is left of the run")
	require.Equal(t, 2.5, pj.MaxPriceUSDPerGPUHour)
	require.True(t, pj.Interruptible)
	require.NotNil(t, pj.Current)
	require.Equal(t, "a", pj.Current.Region)
	require.Equal(t, []policy.Window{{Start: t0.Add(time.Hour), End: t0.Add(100 * time.Minute)}}, pj.Current.Segments)
	held := job("h", func(j *greenq.Job) { j.Plan = &greenq.Plan{Held: true} })
	require.Nil(t, planning.PolicyJob(held).Current, "a held (pending) job has no current plan to keep")
}

func TestPlan(t *testing.T) {
	t.Parallel()
	p := planning.New(policy.Config{Slot: 15 * time.Minute})
	regions := []planning.Region{
		{Config: greenq.Region{Name: "a", PUE: 1}, Series: series("a", "file"), HasSeries: true},
		{Config: greenq.Region{Name: "b", PUE: 1}, Series: series("b", "greenq-forecaster (x down)", 5), HasSeries: true,
			Fallback: "greenq-forecaster (x down)"},
		{Config: greenq.Region{Name: "c", PUE: 1}},
	}
	jobs := []*greenq.Job{
		job("onA", func(j *greenq.Job) { j.Regions = []string{"a"} }),
		job("free"),
		job("short", func(j *greenq.Job) {
			j.Regions, j.DurationEstimateS, j.EstimateSource = []string{"a"}, 12*60, greenq.EstimateDefault
		}),
		job("nowhere", func(j *greenq.Job) { j.Regions = []string{"mars"} }),
	}
	plans := p.Plan(t0, jobs, regions)
	require.Len(t, plans, 4)
	require.Equal(t, "a", plans[0].Region)
	require.Empty(t, plans[0].Signal)
	require.NotContains(t, plans[0].Reason, "signal for")
	require.Equal(t, "b", plans[1].Region, "the dip")
	require.Equal(t, t0.Add(5*time.Hour), plans[1].Start)
	require.Equal(t, "greenq-forecaster (x down)", plans[1].Signal)
	require.Contains(t, plans[1].Reason, "(signal for b: greenq-forecaster (x down))")
	require.Contains(t, plans[2].Reason, "; duration assumed 12m")
	require.NotContains(t, plans[0].Reason, "assumed")
	require.False(t, planning.Placed(plans[3]), "%+v", plans[3])
	for _, pl := range plans[:3] {
		require.True(t, planning.Placed(pl))
		require.Equal(t, t0, pl.PlannedAt)
		require.NotEmpty(t, pl.Alternatives, "the planner's alternatives are kept for explain")
	}
}

func TestReleaseAt(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	for _, tc := range []struct {
		name string
		plan greenq.Plan
		want time.Time
	}{
		{"later start", greenq.Plan{Start: t0.Add(3 * time.Hour), End: t0.Add(4 * time.Hour)}, t0.Add(3 * time.Hour)},
		{"start passed", greenq.Plan{Start: t0, End: t0.Add(2 * time.Hour)}, now},
		{"urgent", greenq.Plan{Start: t0.Add(3 * time.Hour), End: t0.Add(4 * time.Hour), Urgent: true}, now},
	} {
		require.Equal(t, tc.want, planning.ReleaseAt(&tc.plan, now), tc.name)
	}
}

type facts struct {
	regions []greenq.Region
	series  map[string]forecast.Series
	reads   int
}

func (f *facts) Regions(context.Context) ([]greenq.Region, error) { f.reads++; return f.regions, nil }
func (f *facts) Series(_ context.Context, r string) (forecast.Series, error) {
	s, ok := f.series[r]
	if !ok {
		return forecast.Series{}, errors.Join(errors.New("none"), greenq.ErrNotFound)
	}
	return s, nil
}

func TestExplain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := planning.New(policy.Config{Slot: 15 * time.Minute})
	f := &facts{regions: []greenq.Region{{Name: "a"}, {Name: "b"}}, series: map[string]forecast.Series{"a": series("a", "file"), "b": series("b", "file", 6)}}

	// Not planned yet: planned now over facts, the option it would pick.
	j := job("j")
	x, err := p.Explain(ctx, t0, j, f)
	require.NoError(t, err)
	require.Equal(t, 1, f.reads)
	require.Contains(t, x.Why, "not planned yet")
	require.Equal(t, "b", x.Chosen.Region)
	require.Equal(t, t0.Add(6*time.Hour), x.Chosen.Start)

	// Planned: the stored plan is the chosen option, facts are not read.
	j.Plan = &p.Plan(t0, []*greenq.Job{j}, []planning.Region{
		{Config: f.regions[0], Series: f.series["a"], HasSeries: true},
		{Config: f.regions[1], Series: f.series["b"], HasSeries: true}})[0]
	x, err = p.Explain(ctx, t0.Add(time.Minute), j, f)
	require.NoError(t, err)
	require.Equal(t, 1, f.reads)
	require.Equal(t, j.Plan.Reason, x.Why)
	require.Equal(t, planning.Option{Region: "b", Start: j.Plan.Start, End: j.Plan.End, ExpectedGCO2: j.Plan.ExpectedGCO2,
		ExpectedCostUSD: j.Plan.ExpectedCostUSD}, *x.Chosen)
	last := x.Alternatives[len(x.Alternatives)-1]
	require.Equal(t, "a", last.Region, "the baseline: the first allowed region at once")
	require.Equal(t, t0, last.Start)
	require.Equal(t, time.Hour, last.End.Sub(last.Start))
	require.Equal(t, j.Plan.Baseline.ExpectedGCO2, last.ExpectedGCO2)
	require.Contains(t, last.Rejected, planning.BaselinePrefix+": ")
	for _, o := range x.Alternatives {
		require.NotEmpty(t, o.Rejected)
		require.GreaterOrEqual(t, o.ExpectedGCO2, x.Chosen.ExpectedGCO2)
	}

	j.Plan.Provisional = true
	x, err = p.Explain(ctx, t0, j, f)
	require.NoError(t, err)
	require.Equal(t, "provisional, until the next planning round weighs capacity: "+j.Plan.Reason, x.Why)

	// Held: no chosen option; the baseline runs the job's whole length.
	held := job("h", func(j *greenq.Job) {
		j.Plan = &greenq.Plan{Held: true, Reason: "held: …", Baseline: greenq.Baseline{Region: "a", Start: t0, ExpectedGCO2: 90}}
	})
	x, err = p.Explain(ctx, t0, held, f)
	require.NoError(t, err)
	require.Nil(t, x.Chosen)
	require.Equal(t, []planning.Option{{Region: "a", Start: t0, End: t0.Add(time.Hour), ExpectedGCO2: 90, Rejected: planning.BaselinePrefix}}, x.Alternatives)
}
