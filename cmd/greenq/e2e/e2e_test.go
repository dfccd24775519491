package e2e

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// topology says how greenq reaches Redis.
type topology struct {
	Redis    string
	Cluster  []string
	Sentinel string
}

// The end-to-end flow of issue 2 on each Redis topology of issue 8.

func TestEndToEndSingleRedis(t *testing.T) {
	t.Parallel()
	r := startRedis(t, "--appendonly", "yes")
	knownWindows(t, topology{Redis: r.URL()})
}

func TestEndToEndRedisCluster(t *testing.T) {
	t.Parallel()
	knownWindows(t, topology{Cluster: startCluster(t)})
}

func TestEndToEndRedisSentinel(t *testing.T) {
	t.Parallel()
	_, sentinel := startSentinel(t)
	knownWindows(t, topology{Sentinel: sentinel})
}

// candidate is a region and series row a job could run in.
type candidate struct {
	Region string
	Row    int
	Value  float64
}

// best returns the lowest-intensity row of the allowed regions that lies
// wholly inside [from, to), and the runner-up. Rows are [base+i×step,
// base+(i+1)×step); a one-step job run anywhere else overlaps a higher
// neighbour, so the planner's best start is the start of this row.
func best(vals map[string][]float64, zoneOf map[string]string, allowed []string, base time.Time, step time.Duration, from, to time.Time) (candidate, candidate) {
	var cs []candidate
	for _, r := range allowed {
		for i, v := range vals[zoneOf[r]] {
			s := base.Add(time.Duration(i) * step)
			if !s.Before(from) && !s.Add(step).After(to) {
				cs = append(cs, candidate{Region: r, Row: i, Value: v})
			}
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Value < cs[j].Value })
	return cs[0], cs[1]
}

// knownWindows runs a server and workers in two regions whose series are
// real history rewritten onto 2-second rows, and checks that jobs run in
// exactly the region and window the series makes best, that a job allowed
// one region runs there, that an urgent job runs at once, and that the job
// JSON carries plan, run and receipt.
func knownWindows(t *testing.T, topo topology) {
	const step = 2 * time.Second
	dir := t.TempDir()
	base := time.Now().Truncate(time.Second).Add(3 * time.Second)
	vals := writeSeries(t, dir, base, step, "GB", "DE-LU")
	zoneOf := map[string]string{"gb": "GB", "de": "DE-LU"}
	cfg := writeConfig(t, stackConfig{Redis: topo.Redis, Cluster: topo.Cluster, Sentinel: topo.Sentinel, FileDir: dir,
		Regions: []region{{Name: "gb", Zone: "GB"}, {Name: "de", Zone: "DE-LU"}}})
	srv := startServer(t, "server", cfg)
	startWorker(t, "worker-gb", cfg, "gb", 2)
	startWorker(t, "worker-de", cfg, "de", 2)
	srv.API.waitReady(t, true, "gb", "de")

	for _, r := range []string{"gb", "de"} {
		f, err := srv.API.forecast(r)
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(f.Source, "file"), "region %s source %q", r, f.Source)
	}

	now := time.Now()
	// Row 9 ends at base+20s; the default safety margin is 2 slots (2s), so
	// rows up to 9 fit this deadline and row 10 does not. The latest start
	// falls on a row boundary: a run may start mid-row at its latest start,
	// and a deadline past one would let the planner straddle rows 9 and 10.
	deadline := base.Add(10*step + 2*time.Second)
	require.True(t, now.Before(base.Add(2*step)), "setup took too long: rows 2-9 must still lie ahead (now %s, base %s)", now, base)
	wantAll, runnerUp := best(vals, zoneOf, []string{"gb", "de"}, base, step, now, deadline.Add(-2*time.Second))
	require.Equal(t, candidate{Region: "gb", Row: 4, Value: 133.56}, wantAll)
	require.Greater(t, runnerUp.Value, wantAll.Value*1.05, "the best window must win clearly")
	wantDE, runnerUpDE := best(vals, zoneOf, []string{"de"}, base, step, now, deadline.Add(-2*time.Second))
	require.Equal(t, candidate{Region: "de", Row: 9, Value: 431.68}, wantDE)
	require.Greater(t, runnerUpDE.Value, wantDE.Value*1.05)

	const script = `echo "region=$GREENQ_REGION trial=$GREENQ_TRIAL"; sleep 0.3`
	// Any region, through the CLI.
	code, out, errOut := cli(t, "submit", "--api", srv.URL, "-o", "json", "--name", "e2e-any",
		"--deadline", deadline.UTC().Format(time.RFC3339Nano), "--duration", "2s", "--", "sh", "-c", script)
	require.Equal(t, 0, code, "submit: %s", errOut)
	var anyJob greenq.Job
	require.NoError(t, json.Unmarshal([]byte(out), &anyJob), out)
	// One region only, and an urgent job, over HTTP.
	deJob := srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-de", Command: []string{"sh", "-c", script},
		Regions: []string{"de"}, DurationEstimateS: 2, Deadline: deadline.UTC().Format(time.RFC3339Nano)})[0]
	urgentAt := time.Now()
	urgent := srv.API.submit(t, greenq.SubmitRequest{Name: "e2e-urgent", Command: []string{"sh", "-c", script},
		DurationEstimateS: 2, Deadline: urgentAt.Add(3 * time.Second).UTC().Format(time.RFC3339Nano)})[0]

	checkRan := func(id string, want candidate) {
		t.Helper()
		start := base.Add(time.Duration(want.Row) * step)
		j := srv.API.waitJob(t, id, 15*time.Second, "a plan", func(j *greenq.Job) bool { return j.Plan != nil })
		require.Equal(t, want.Region, j.Plan.Region, "plan: %s", j.Plan.Reason)
		require.True(t, j.Plan.Start.Equal(start), "plan start %s, want %s (row %d): %s", j.Plan.Start, start, want.Row, j.Plan.Reason)
		j = srv.API.waitFinal(t, id, time.Until(deadline)+10*time.Second)
		require.Equal(t, greenq.StateSucceeded, j.State, "error: %s", j.Error)
		require.NotNil(t, j.Run)
		require.Equal(t, want.Region, j.Run.Region)
		require.False(t, j.Run.StartedAt.Before(start), "released early: started %s, window %s", j.Run.StartedAt, start)
		require.True(t, j.Run.StartedAt.Before(start.Add(step)), "started %s, after its window [%s, +%s)", j.Run.StartedAt, start, step)
		t.Logf("job %s: region %s, release lag %s", id, j.Run.Region, j.Run.StartedAt.Sub(start))
		require.NotNil(t, j.Receipt)
		require.Positive(t, j.Receipt.EnergyKWh)
		require.Positive(t, j.Receipt.GCO2)
		if j.Run.FinishedAt != nil && !j.Run.FinishedAt.After(start.Add(step)) {
			// The whole run lay in the row: the receipt charges its value.
			require.InDelta(t, want.Value, j.Receipt.IntensityGCO2PerKWh, want.Value*0.01)
		}
		require.Equal(t, 1, j.Attempts)
	}
	checkRan(anyJob.ID, wantAll)
	checkRan(deJob.ID, wantDE)

	u := srv.API.waitFinal(t, urgent.ID, 15*time.Second)
	require.Equal(t, greenq.StateSucceeded, u.State, "error: %s", u.Error)
	require.NotNil(t, u.Run)
	require.Less(t, u.Run.StartedAt.Sub(urgentAt), 2*time.Second, "an urgent job runs at once")
	require.False(t, u.Run.FinishedAt.After(u.Deadline), "finished %s after its deadline %s", u.Run.FinishedAt, u.Deadline)

	// The contract's JSON fields, as scripts read them.
	st, raw, err := srv.API.do("GET", "/v1/jobs/"+anyJob.ID, nil)
	require.NoError(t, err)
	require.Equal(t, 200, st)
	var doc map[string]map[string]any
	var loose map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(raw, &loose))
	doc = map[string]map[string]any{}
	for _, k := range []string{"plan", "run", "receipt"} {
		require.Contains(t, loose, k)
		m := map[string]any{}
		require.NoError(t, json.Unmarshal(loose[k], &m), "%s: %s", k, loose[k])
		doc[k] = m
	}
	for k, fields := range map[string][]string{
		"plan":    {"region", "start", "expected_gco2", "expected_cost_usd", "reason", "baseline"},
		"run":     {"region", "worker", "started_at", "finished_at", "exit_code"},
		"receipt": {"energy_kwh", "energy_source", "pue", "intensity_gco2_per_kwh", "gco2", "baseline_gco2", "saved_gco2"},
	} {
		for _, f := range fields {
			require.Contains(t, doc[k], f, "%s.%s in %s", k, f, raw)
		}
	}
	require.Equal(t, "worker-gb", doc["run"]["worker"])

	// The job's own view of where it ran.
	code, out, _ = cli(t, "logs", "--api", srv.URL, anyJob.ID)
	require.Equal(t, 0, code)
	require.Contains(t, out, "region=gb")

	// Nothing ran twice: one task per job went through the region queues.
	all := srv.API.jobs(t)
	requireProcessed(t, topo, map[string]int{"gb": countIn(all, "gb"), "de": countIn(all, "de")})
	requireOneTaskPerJob(t, topo, "gb", countIn(all, "gb"))
	requireOneTaskPerJob(t, topo, "de", countIn(all, "de"))
}

// countIn counts jobs that ran in region.
func countIn(jobs []*greenq.Job, region string) int {
	n := 0
	for _, j := range jobs {
		if j.Run != nil && j.Run.Region == region {
			n++
		}
	}
	return n
}
