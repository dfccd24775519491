package queue

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
)

// fakeRound is an in-memory roundReader and planWriter: the only things a
// planning round may read and write.
type fakeRound struct {
	mu      sync.Mutex
	rows    map[string]*row
	regions []greenq.Region
	series  map[string]forecast.Series
	loaded  []string // ids whose records were read, in order
	writes  int      // plan changes written
	paused  []string // ids whose pause was asked for
}

func (f *fakeRound) stateVersions(_ context.Context, skipReserved bool, states ...greenq.State) ([]jobVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []jobVersion
	for id, r := range f.rows {
		if slices.Contains(states, r.job.State) && !(skipReserved && r.resv) {
			out = append(out, jobVersion{id: id, ver: r.ver})
		}
	}
	slices.SortFunc(out, func(a, b jobVersion) int { return strings.Compare(a.id, b.id) })
	return out, nil
}

func (f *fakeRound) loadMany(_ context.Context, ids []string) ([]*row, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*row
	for _, id := range ids {
		if r, ok := f.rows[id]; ok {
			j := *r.job
			out = append(out, &row{job: &j, ver: r.ver, rel: r.rel, resv: r.resv})
			f.loaded = append(f.loaded, id)
		}
	}
	return out, nil
}

func (f *fakeRound) liveRegions(context.Context) ([]greenq.Region, map[string][]int, error) {
	return f.regions, map[string][]int{}, nil
}

func (f *fakeRound) Series(_ context.Context, region string) (forecast.Series, error) {
	if s, ok := f.series[region]; ok {
		return s, nil
	}
	return forecast.Series{}, notFound(region)
}

func (f *fakeRound) publishPauses(_ context.Context, ids []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.paused = append(f.paused, ids...)
	return nil
}

// writePlans applies each change to the record it was read from, as the
// store's compare-and-set does, and stores it at the next version.
func (f *fakeRound) writePlans(_ context.Context, changes []planChange) ([]*row, int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*row
	for _, c := range changes {
		r := c.read
		if r == nil || f.rows[c.id].ver != r.ver {
			continue
		}
		ok, err := applyPlan(r, c.plan, c.plan.PlannedAt)
		if err != nil || !ok {
			continue
		}
		v, _ := strconv.Atoi(r.ver)
		r.ver = strconv.Itoa(v + 1)
		f.rows[c.id] = r
		f.writes++
		out = append(out, r)
	}
	return out, len(out), nil
}

// TestPlanOnceReadsAndWritesOnlyThroughItsInterfaces runs rounds over
// fakeRound alone (the store has no regions and never reaches Redis): the
// first reads and plans both jobs and writes both plans in one call; the
// second finds them in the planner's own cache at the written versions,
// reads no record and writes nothing; a job changed meanwhile is the only
// one read again.
func TestPlanOnceReadsAndWritesOnlyThroughItsInterfaces(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	t.Cleanup(func() { rdb.Close() })
	s, err := NewStore(rdb, Config{})
	require.NoError(t, err)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	p, err := NewPlanner(s, PlannerConfig{Now: func() time.Time { return now }})
	require.NoError(t, err)
	f := &fakeRound{rows: map[string]*row{}, regions: []greenq.Region{{Name: "a", PUE: 1, GPUPriceUSDPerHour: 1}}}
	for _, id := range []string{"j1", "j2"} {
		f.rows[id] = &row{ver: "1", job: &greenq.Job{ID: id, State: greenq.StatePending, GPUs: 1, DurationEstimateS: 3600,
			SubmittedAt: now, Deadline: now.Add(24 * time.Hour), EstimateSource: greenq.EstimateUser}}
	}
	p.read, p.write = f, f
	p.published = now // the store has no regions to share anyway

	ctx := context.Background()
	round, err := p.PlanOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, Round{Planned: 2, Changed: 2}, round)
	require.Equal(t, []string{"j1", "j2"}, f.loaded)
	require.Equal(t, greenq.StatePlanned, f.rows["j1"].job.State)
	require.Equal(t, "a", f.rows["j1"].job.Plan.Region)

	f.loaded = nil
	round, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, Round{Planned: 2, Changed: 0}, round)
	require.Empty(t, f.loaded, "the written records came back from the planner's cache")
	require.Equal(t, 2, f.writes)

	f.rows["j2"].ver = "9" // changed by another writer
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"j2"}, f.loaded)
}

// TestPlanOncePausesARunningJobForBetterHours: a round with no job to plan
// still re-decides a running interruptible job: with its region's cheap
// hours later than the rest of its run, it asks for the job's pause; with
// them now, it asks for none.
func TestPlanOncePausesARunningJobForBetterHours(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	now := start.Add(time.Hour)
	for _, c := range []struct {
		name  string
		cheap int // the first of the region's two cheap hours
		want  []string
	}{
		{"cheap hours later", 10, []string{"run"}},
		{"cheap hours now", 1, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
			t.Cleanup(func() { rdb.Close() })
			s, err := NewStore(rdb, Config{})
			require.NoError(t, err)
			p, err := NewPlanner(s, PlannerConfig{Now: func() time.Time { return now }})
			require.NoError(t, err)
			series := forecast.Series{Region: "a", Signal: forecast.SignalAverage, IssuedAt: start}
			for h := range 48 {
				v := 300.0
				if h == c.cheap || h == c.cheap+1 {
					v = 40
				}
				st := start.Add(time.Duration(h) * time.Hour)
				series.Points = append(series.Points, forecast.Point{Start: st, End: st.Add(time.Hour), GCO2PerKWh: v, Kind: forecast.KindForecast})
			}
			f := &fakeRound{rows: map[string]*row{}, regions: []greenq.Region{{Name: "a", PUE: 1, Capacity: 1}},
				series: map[string]forecast.Series{"a": series}}
			f.rows["run"] = &row{ver: "1", job: &greenq.Job{ID: "run", State: greenq.StateRunning, GPUs: 1, Interruptible: true,
				DurationEstimateS: 3 * 3600, SubmittedAt: start, Deadline: start.Add(24 * time.Hour), EstimateSource: greenq.EstimateUser,
				Plan: &greenq.Plan{Region: "a", Start: start, End: start.Add(3 * time.Hour)},
				Run:  &greenq.Run{Region: "a", StartedAt: start}}}
			p.read, p.write = f, f
			p.published = now

			round, err := p.PlanOnce(context.Background())
			require.NoError(t, err)
			require.Equal(t, c.want, f.paused)
			require.Equal(t, Round{Paused: len(c.want)}, round)
			require.Zero(t, f.writes, "a pause is asked of the worker; the record is the worker's to write")
		})
	}
}
