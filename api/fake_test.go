package api

import (
	"context"
	"encoding/csv"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/planning"
	"github.com/greenq/greenq/policy"
	"github.com/greenq/greenq/queue"
)

// testNow is the fake clock of every handler test.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fakeStore is an in-memory Store that validates submissions as the real
// one does (greenq.SubmitRequest.Normalize) and counts what reached it.
type fakeStore struct {
	mu      sync.Mutex
	now     func() time.Time
	jobs    map[string]*greenq.Job
	seq     int
	submits int // Submit calls that reached the store
	regions []greenq.Region
	series  map[string]forecast.Series
	logs    map[string][]byte
	pingErr error
	// advance moves a job one lifecycle step per Get (pending → planned →
	// running → succeeded with a receipt), for clients that wait.
	advance bool
	// blockUntilDone makes List wait for the request's context to end.
	blockUntilDone bool
	// submitErr, when set, may refuse a submission after validation, as a
	// real store does when Redis fails or no worker is large enough.
	submitErr func(req greenq.SubmitRequest) error
}

var _ Store = (*fakeStore)(nil)

// fixtureRegions maps the demo regions to their testdata series.
var fixtureRegions = []struct{ name, zone, file string }{
	{"uk", "GB", "testdata/em_GB.csv"},
	{"eu-central", "DE-LU", "testdata/em_DE-LU.csv"},
	{"us-west", "US-CAL-CISO", "testdata/em_US-CAL-CISO.csv"},
}

func newFakeStore(t testing.TB, now time.Time) *fakeStore {
	t.Helper()
	f := &fakeStore{now: func() time.Time { return now }, jobs: map[string]*greenq.Job{},
		series: map[string]forecast.Series{}, logs: map[string][]byte{}}
	for i, r := range fixtureRegions {
		f.regions = append(f.regions, greenq.Region{Name: r.name, Zone: r.zone, Provider: "file",
			PUE: 1.1, GPUPriceUSDPerHour: 2 + float64(i)/2, Capacity: 8, Workers: 1})
		f.series[r.name] = loadSeries(t, r.name, r.zone, r.file, now)
	}
	return f
}

// loadSeries reads a fixture and shifts it so it starts 12 h before now:
// the past as actuals, the rest as forecast.
func loadSeries(t testing.TB, region, zone, path string, now time.Time) forecast.Series {
	t.Helper()
	fh, err := os.Open(path)
	require.NoError(t, err)
	defer fh.Close()
	rows, err := csv.NewReader(fh).ReadAll()
	require.NoError(t, err)
	s := forecast.Series{Region: region, Zone: zone, Source: "file", Signal: forecast.SignalAverage, IssuedAt: now.Add(-time.Hour)}
	start := now.Add(-12 * time.Hour)
	for i, row := range rows[1:] {
		v, err := strconv.ParseFloat(row[1], 64)
		require.NoError(t, err)
		p := forecast.Point{Start: start.Add(time.Duration(i) * time.Hour), GCO2PerKWh: v, Kind: forecast.KindForecast}
		p.End = p.Start.Add(time.Hour)
		if p.End.Before(now) {
			p.Kind = forecast.KindActual
		}
		s.Points = append(s.Points, p)
	}
	return s
}

func (f *fakeStore) regionNames() []string {
	var out []string
	for _, r := range f.regions {
		out = append(out, r.Name)
	}
	return out
}

func (f *fakeStore) Submit(ctx context.Context, tenant string, req greenq.SubmitRequest) ([]*greenq.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submits++
	now := f.now()
	deadline, err := req.Normalize(now, f.regionNames())
	if err != nil {
		return nil, err
	}
	if f.submitErr != nil {
		if err := f.submitErr(req); err != nil {
			return nil, err
		}
	}
	var out []*greenq.Job
	group := ""
	if req.Trials > 1 {
		group = fmt.Sprintf("g-%d", f.seq+1)
	}
	for trial := range req.Trials {
		f.seq++
		j := &greenq.Job{ID: fmt.Sprintf("j-%04d", f.seq), Name: req.Name, Kind: req.Kind, State: greenq.StatePending,
			Tenant: tenant, Key: req.Key, Command: req.Command, SubmittedAt: now, UpdatedAt: now, Deadline: deadline,
			DurationEstimateS: req.DurationEstimateS, GPUs: req.GPUs, Regions: req.Regions, Interruptible: req.Interruptible,
			Group: group, Tags: req.Tags, MaxPriceUSDPerGPUHour: req.MaxPriceUSDPerGPUHour, PowerW: req.PowerW,
			FunctionalUnit: req.FunctionalUnit, JobSpec: req.JobSpec, HomeRegion: req.HomeRegion}
		if group != "" {
			j.Trial = trial + 1
		}
		if j.Name == "" {
			j.Name = j.ID
		}
		if j.DurationEstimateS == 0 {
			j.DurationEstimateS = int64(greenq.DefaultDuration / time.Second)
		}
		f.jobs[j.ID] = j
		c := *j
		out = append(out, &c)
	}
	return out, nil
}

func (f *fakeStore) lookup(tenant, id string) (*greenq.Job, error) {
	j, ok := f.jobs[id]
	if !ok || (tenant != "" && j.Tenant != tenant) {
		return nil, fmt.Errorf("job %s: %w", id, greenq.ErrNotFound)
	}
	return j, nil
}

func (f *fakeStore) Get(ctx context.Context, tenant, id string) (*greenq.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.lookup(tenant, id)
	if err != nil {
		return nil, err
	}
	if f.advance {
		f.step(j)
	}
	c := *j
	return &c, nil
}

// step moves j one state along, filling plan, run and receipt as a real
// server would.
func (f *fakeStore) step(j *greenq.Job) {
	now := f.now()
	region := f.regions[0].Name
	if len(j.Regions) > 0 {
		region = j.Regions[0]
	}
	switch j.State {
	case greenq.StatePending:
		j.State = greenq.StatePlanned
		j.Plan = &greenq.Plan{Region: region, Start: now, End: now.Add(j.Duration()), ExpectedGCO2: 12.5,
			ExpectedCostUSD: 0.01, ExpectedKWh: 0.05, Reason: "run now in " + region,
			Baseline: greenq.Baseline{Region: region, Start: now, ExpectedGCO2: 20}, PlannedAt: now}
	case greenq.StatePlanned, greenq.StateReleased:
		j.State = greenq.StateRunning
		j.Attempts++
		j.Run = &greenq.Run{Region: region, Worker: "w-1", StartedAt: now, Attempt: j.Attempts}
	case greenq.StateRunning:
		j.State = greenq.StateSucceeded
		fin, code := now.Add(j.Duration()), 0
		j.Run.FinishedAt, j.Run.ExitCode = &fin, &code
		j.Receipt = &greenq.Receipt{EnergyKWh: 0.0004, EnergySource: "estimate", PUE: 1.1, IntensityGCO2PerKWh: 190.5,
			GCO2: 0.08, BaselineGCO2: 0.12, SavedGCO2: 0.04, DurationS: float64(j.DurationEstimateS)}
		f.logs[j.ID] = []byte("trained\n")
	}
	j.UpdatedAt = now
}

func (f *fakeStore) List(ctx context.Context, opts queue.ListOptions) ([]*greenq.Job, string, error) {
	if f.blockUntilDone {
		<-ctx.Done()
		return nil, "", fmt.Errorf("list jobs: %w", ctx.Err())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := slices.Sorted(maps.Keys(f.jobs))
	slices.Reverse(ids) // newest first
	var all []*greenq.Job
	for _, id := range ids {
		j := f.jobs[id]
		if (opts.Tenant != "" && j.Tenant != opts.Tenant) || (opts.State != "" && j.State != opts.State) ||
			(opts.Group != "" && j.Group != opts.Group) {
			continue
		}
		if opts.Region != "" && (j.Plan == nil || j.Plan.Region != opts.Region) {
			continue
		}
		match := true
		for k, v := range opts.Tags {
			match = match && j.Tags[k] == v
		}
		if match {
			c := *j
			all = append(all, &c)
		}
	}
	off := 0
	if opts.Cursor != "" {
		n, err := strconv.Atoi(opts.Cursor)
		if err != nil {
			return nil, "", greenq.Invalid("cursor", "is not a cursor from this server")
		}
		off = n
	}
	limit := opts.Limit
	if limit == 0 {
		limit = 100
	}
	off = min(off, len(all))
	end := min(off+limit, len(all))
	next := ""
	if end < len(all) {
		next = strconv.Itoa(end)
	}
	return all[off:end], next, nil
}

func (f *fakeStore) Cancel(ctx context.Context, tenant, id string) (*greenq.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.lookup(tenant, id)
	if err != nil {
		return nil, err
	}
	if j.State.Final() {
		return nil, greenq.Errorf(greenq.CodeConflict, "job %s is already %s", id, j.State)
	}
	j.State = greenq.StateCancelled
	c := *j
	return &c, nil
}

// LogsFrom serves the stored bytes after offset (the fake never cuts);
// with advance, each read moves the job on like Get.
func (f *fakeStore) LogsFrom(ctx context.Context, tenant, id string, offset int64) (*queue.Log, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j, err := f.lookup(tenant, id)
	if err != nil {
		return nil, err
	}
	if f.advance {
		f.step(j)
	}
	b := f.logs[id]
	if offset < 0 || offset > int64(len(b)) {
		return nil, greenq.Invalid("offset", "is past the end of the log (%d bytes written so far), got %d", len(b), offset)
	}
	return &queue.Log{Data: b[offset:], Offset: int64(len(b)), State: j.State}, nil
}

func (f *fakeStore) Pending(ctx context.Context) ([]*greenq.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*greenq.Job
	for _, j := range f.jobs {
		if j.State == greenq.StatePending || j.State == greenq.StatePlanned {
			c := *j
			out = append(out, &c)
		}
	}
	return out, nil
}

func (f *fakeStore) Series(ctx context.Context, region string) (forecast.Series, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.series[region]
	if !ok {
		return forecast.Series{}, fmt.Errorf("forecast of region %s: %w", region, greenq.ErrNotFound)
	}
	return s, nil
}

func (f *fakeStore) Regions(ctx context.Context) ([]greenq.Region, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.regions), nil
}

// Explain explains through a planning adapter with the policy defaults,
// reading regions and series from f, as *queue.Store does from Redis.
func (f *fakeStore) Explain(ctx context.Context, tenant, id string, now time.Time) (*greenq.Job, planning.Explanation, error) {
	j, err := f.Get(ctx, tenant, id)
	if err != nil {
		return nil, planning.Explanation{}, err
	}
	x, err := planning.New(policy.Config{}).Explain(ctx, now, j, f)
	return j, x, err
}

func (f *fakeStore) Ping(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pingErr
}

// stored returns how many jobs the store holds.
func (f *fakeStore) stored() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.jobs)
}

// put stores j as is (fixtures for plan, dashboard and tenant tests).
func (f *fakeStore) put(j *greenq.Job) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[j.ID] = j
}

// seedDashboard stores planned, running and finished jobs across regions.
func (f *fakeStore) seedDashboard(tenant string) {
	now := f.now()
	plan := func(region string, startH, hours float64, gco2, base float64) *greenq.Plan {
		start := now.Add(time.Duration(startH * float64(time.Hour)))
		return &greenq.Plan{Region: region, Start: start, End: start.Add(time.Duration(hours * float64(time.Hour))),
			ExpectedGCO2: gco2, ExpectedCostUSD: 2.5 * hours, ExpectedKWh: 0.3 * hours,
			Reason:   fmt.Sprintf("defer %.0fh to %s", startH, region),
			Baseline: greenq.Baseline{Region: "us-west", Start: now, ExpectedGCO2: base}, PlannedAt: now}
	}
	job := func(id, name string, st greenq.State, deadlineH float64, p *greenq.Plan) *greenq.Job {
		return &greenq.Job{ID: id, Name: name, Kind: greenq.KindTrain, State: st, Tenant: tenant,
			Command: []string{"python", "train.py"}, SubmittedAt: now.Add(-time.Hour), UpdatedAt: now,
			Deadline: now.Add(time.Duration(deadlineH * float64(time.Hour))), DurationEstimateS: 3 * 3600, GPUs: 1,
			Regions: []string{}, Plan: p}
	}
	f.put(job("d-1", "resnet-finetune", greenq.StatePlanned, 30, plan("uk", 6, 3, 110, 180)))
	f.put(job("d-2", "bert-sweep-t1", greenq.StatePlanned, 40, plan("eu-central", 14, 4, 220, 300)))
	f.put(job("d-3", "llm-eval", greenq.StatePending, 20, nil))
	r := job("d-4", "nightly-infer", greenq.StateRunning, 10, plan("us-west", -1, 2, 60, 60))
	r.Run = &greenq.Run{Region: "us-west", Worker: "w-7", StartedAt: now.Add(-time.Hour), Attempt: 1}
	f.put(r)
	d := job("d-5", "done-job", greenq.StateSucceeded, 5, plan("uk", -4, 1, 40, 90))
	d.Receipt = &greenq.Receipt{EnergyKWh: 0.31, EnergySource: "estimate", PUE: 1.1, IntensityGCO2PerKWh: 41,
		GCO2: 14, BaselineGCO2: 96.1, SavedGCO2: 82.1, DurationS: 3600}
	fin, ok, bad := now.Add(-3*time.Hour), 0, 1
	d.Run = &greenq.Run{Region: "uk", Worker: "w-2", StartedAt: now.Add(-4 * time.Hour), FinishedAt: &fin, ExitCode: &ok, Attempt: 1}
	f.put(d)
	e := job("d-6", "broken-eval", greenq.StateFailed, 5, plan("eu-central", -2, 1, 30, 40))
	failedAt := now.Add(-time.Hour)
	e.Run = &greenq.Run{Region: "eu-central", Worker: "w-3", StartedAt: now.Add(-2 * time.Hour), FinishedAt: &failedAt, ExitCode: &bad, Attempt: 1}
	e.Error = "exit status 1"
	f.put(e)
}
