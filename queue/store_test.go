package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/greenq/greenq"
	"github.com/hibiken/asynq"
	"github.com/stretchr/testify/require"
)

// fakeEnqueuer records tasks and refuses a repeated task id, as asynq does.
type fakeEnqueuer struct {
	mu    sync.Mutex
	tasks map[string]string // task id → queue
	err   error
}

var _ Enqueuer = (*fakeEnqueuer)(nil)

func (f *fakeEnqueuer) EnqueueContext(_ context.Context, _ *asynq.Task, opts ...asynq.Option) (*asynq.TaskInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var id, q string
	for _, o := range opts {
		switch o.Type() {
		case asynq.TaskIDOpt:
			id = o.Value().(string)
		case asynq.QueueOpt:
			q = o.Value().(string)
		}
	}
	if f.tasks == nil {
		f.tasks = map[string]string{}
	}
	if _, ok := f.tasks[id]; ok {
		return nil, asynq.ErrTaskIDConflict
	}
	f.tasks[id] = q
	return &asynq.TaskInfo{ID: id, Queue: q}, nil
}

func TestStateMachine(t *testing.T) {
	t.Parallel()
	type outcome struct {
		state greenq.State
		code  greenq.ErrorCode // "" = no error
	}
	ops := []string{"plan", "release", "start", "succeed", "fail", "pause", "cancel", "expire"}
	const (
		P, PL, RE, RU = greenq.StatePending, greenq.StatePlanned, greenq.StateReleased, greenq.StateRunning
		S, F, C, E    = greenq.StateSucceeded, greenq.StateFailed, greenq.StateCancelled, greenq.StateExpired
	)
	cf := greenq.CodeConflict
	// want[from][op]; an op that does not apply leaves the state as it is
	// (skip) or refuses with CodeConflict.
	want := map[greenq.State][]outcome{
		//   plan       release     start        succeed      fail         pause        cancel      expire
		P:  {{PL, ""}, {P, ""}, {P, cf}, {P, cf}, {P, cf}, {P, cf}, {C, ""}, {E, ""}},
		PL: {{PL, ""}, {RE, ""}, {PL, cf}, {PL, cf}, {PL, cf}, {PL, cf}, {C, ""}, {E, ""}},
		RE: {{RE, ""}, {RE, ""}, {RU, ""}, {RE, cf}, {RE, cf}, {RE, cf}, {C, ""}, {RE, ""}},
		RU: {{RU, ""}, {RU, ""}, {RU, ""}, {S, ""}, {F, ""}, {PL, ""}, {C, ""}, {RU, ""}},
		S:  {{S, ""}, {S, ""}, {S, cf}, {S, ""}, {S, cf}, {S, cf}, {S, cf}, {S, ""}},
		F:  {{F, ""}, {F, ""}, {F, cf}, {F, cf}, {F, ""}, {F, cf}, {F, cf}, {F, ""}},
		C:  {{C, ""}, {C, ""}, {C, cf}, {C, cf}, {C, cf}, {C, cf}, {C, cf}, {C, ""}},
		E:  {{E, ""}, {E, ""}, {E, cf}, {E, cf}, {E, cf}, {E, cf}, {E, cf}, {E, ""}},
	}
	b := setup(t)
	ctx := context.Background()
	rel, err := NewReleaser(b.s, ReleaserConfig{Client: &fakeEnqueuer{}, Now: b.clk.Now})
	require.NoError(t, err)
	for _, from := range greenq.States {
		for i, op := range ops {
			w := want[from][i]
			t.Run(fmt.Sprintf("%s/%s", from, op), func(t *testing.T) {
				j := b.submit(t, "", func(r *greenq.SubmitRequest) { r.Deadline = "2h" })
				b.force(t, j.ID, from)
				now := b.clk.Now()
				var err error
				switch op {
				case "plan":
					_, err = b.s.SetPlans(ctx, map[string]greenq.Plan{j.ID: {Region: b.regions[1], Start: now, End: now.Add(time.Hour)}})
				case "release":
					_, err = rel.releaseOne(ctx, j.ID, now)
				case "start":
					_, err = b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w2"})
				case "succeed", "fail", "pause":
					st := map[string]greenq.State{"succeed": S, "fail": F, "pause": PL}[op]
					_, err = b.s.Finish(ctx, j.ID, FinishRequest{State: st, Segment: greenq.RunSegment{Start: now, End: now.Add(time.Minute)}})
				case "cancel":
					_, err = b.s.Cancel(ctx, "", j.ID)
				case "expire":
					_, err = b.s.expire(ctx, j.ID, now.Add(3*time.Hour))
				}
				if w.code == "" {
					require.NoError(t, err)
				} else {
					requireCode(t, err, w.code)
				}
				got, err := b.s.Get(ctx, "", j.ID)
				require.NoError(t, err)
				require.Equal(t, w.state, got.State)
				if got.State != from {
					require.True(t, greenq.CanTransition(from, got.State), "%s → %s is not in the state machine", from, got.State)
				}
				// The state index agrees with the record.
				for _, st := range greenq.States {
					_, err := b.rdb.ZScore(ctx, b.s.k.state(st), j.ID).Result()
					require.Equal(t, st == got.State, err == nil, "state index %s", st)
				}
			})
		}
	}
}

func TestSubmitDefaultsAndValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j := b.submit(t, "alice", func(r *greenq.SubmitRequest) {
		r.Name, r.DurationEstimateS, r.Regions = "train-a", 0, []string{b.regions[1]}
	})
	require.Len(t, j.ID, 26)
	require.Equal(t, greenq.StatePending, j.State)
	require.Equal(t, "alice", j.Tenant)
	require.Equal(t, greenq.KindTrain, j.Kind)
	require.Equal(t, 1, j.GPUs)
	require.Equal(t, int64(greenq.DefaultDuration/time.Second), j.DurationEstimateS)
	require.Equal(t, "default", j.EstimateSource)
	require.Equal(t, t0.Add(24*time.Hour), j.Deadline)
	got, err := b.s.Get(ctx, "alice", j.ID)
	require.NoError(t, err)
	require.Equal(t, j, got)

	bad := []struct {
		field string
		mod   func(*greenq.SubmitRequest)
	}{
		{"deadline", func(r *greenq.SubmitRequest) { r.Deadline = "-1h" }},
		{"deadline", func(r *greenq.SubmitRequest) { r.Deadline = "soon" }},
		{"deadline", func(r *greenq.SubmitRequest) { r.Deadline, r.DurationEstimateS = "1h", 7200 }},
		{"gpus", func(r *greenq.SubmitRequest) { r.GPUs = -1 }},
		{"regions", func(r *greenq.SubmitRequest) { r.Regions = []string{"nowhere"} }},
		{"kind", func(r *greenq.SubmitRequest) { r.Kind = "bake" }},
		{"command", func(r *greenq.SubmitRequest) { r.Command = nil }},
		{"trials", func(r *greenq.SubmitRequest) { r.Trials = -2 }},
	}
	for _, c := range bad {
		req := greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h"}
		c.mod(&req)
		_, err := b.s.Submit(ctx, "bob", req)
		var ge *greenq.Error
		require.ErrorAs(t, err, &ge)
		require.Equal(t, greenq.CodeInvalidArgument, ge.Code)
		require.Equal(t, c.field, ge.Field)
	}
	jobs, _, err := b.s.List(ctx, ListOptions{Tenant: "bob"})
	require.NoError(t, err)
	require.Empty(t, jobs, "refused submissions store nothing")
}

func TestSubmitIdempotent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	req := greenq.SubmitRequest{Command: []string{"true"}, Deadline: "24h", Key: "k-1", Trials: 3}
	first, err := b.s.Submit(ctx, "alice", req)
	require.NoError(t, err)
	require.Len(t, first, 3)
	again, err := b.s.Submit(ctx, "alice", req)
	require.NoError(t, err)
	require.Equal(t, first, again)

	other, err := b.s.Submit(ctx, "bob", req)
	require.NoError(t, err)
	require.NotEqual(t, first[0].ID, other[0].ID, "keys are per tenant")

	// The same key with another body is refused, naming key, and stores
	// nothing; the first submission's jobs stay as they were.
	for _, change := range []func(r *greenq.SubmitRequest){
		func(r *greenq.SubmitRequest) { r.Command = []string{"false"} },
		func(r *greenq.SubmitRequest) { r.Trials = 2 },
		func(r *greenq.SubmitRequest) { r.Deadline = "23h" },
		func(r *greenq.SubmitRequest) { r.Tags = map[string]string{"a": "b"} },
	} {
		diff := req
		change(&diff)
		_, err := b.s.Submit(ctx, "alice", diff)
		var ge *greenq.Error
		require.ErrorAs(t, err, &ge)
		require.Equal(t, greenq.CodeConflict, ge.Code)
		require.Equal(t, "key", ge.Field)
		require.Contains(t, ge.Message, first[0].ID)
	}
	list, _, err := b.s.List(ctx, ListOptions{Tenant: "alice"})
	require.NoError(t, err)
	require.Len(t, list, 3, "a refused reuse of a key stores nothing")

	// Racing submissions with one key store one set of jobs.
	req.Key, req.Trials = "k-race", 1
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			jobs, err := b.s.Submit(ctx, "carol", req)
			if err == nil && len(jobs) == 1 {
				got[i] = jobs[0].ID
			}
		}()
	}
	wg.Wait()
	for _, id := range got {
		require.Equal(t, got[0], id)
	}
	list, _, err = b.s.List(ctx, ListOptions{Tenant: "carol"})
	require.NoError(t, err)
	require.Len(t, list, 1)
}

func TestSubmitSweep(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	jobs, err := b.s.Submit(ctx, "alice", greenq.SubmitRequest{Command: []string{"python", "sweep.py"}, Deadline: "48h", Trials: 5})
	require.NoError(t, err)
	require.Len(t, jobs, 5)
	group := jobs[0].Group
	require.NotEmpty(t, group)
	for i, j := range jobs {
		require.Equal(t, group, j.Group)
		require.Equal(t, i+1, j.Trial)
		require.Equal(t, greenq.KindSweep, j.Kind)
		require.Equal(t, jobs[0].Deadline, j.Deadline)
		if i > 0 {
			require.Greater(t, j.ID, jobs[i-1].ID, "ids sort in creation order")
		}
	}
	list, next, err := b.s.List(ctx, ListOptions{Group: group})
	require.NoError(t, err)
	require.Empty(t, next)
	require.Len(t, list, 5)
	require.Equal(t, jobs[4].ID, list[0].ID, "newest first")
}

func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j := b.submit(t, "alice")
	require.NoError(t, b.s.AppendLog(ctx, j.ID, []byte("secret")))

	_, err := b.s.Get(ctx, "bob", j.ID)
	require.ErrorIs(t, err, greenq.ErrNotFound)
	_, err = b.s.Cancel(ctx, "bob", j.ID)
	require.ErrorIs(t, err, greenq.ErrNotFound)
	_, err = b.s.Logs(ctx, "bob", j.ID)
	require.ErrorIs(t, err, greenq.ErrNotFound)
	list, _, err := b.s.List(ctx, ListOptions{Tenant: "bob"})
	require.NoError(t, err)
	require.Empty(t, list)

	got, err := b.s.Get(ctx, "", j.ID)
	require.NoError(t, err, "an admin sees every tenant")
	require.Equal(t, "alice", got.Tenant)
	list, _, err = b.s.List(ctx, ListOptions{Tenant: "alice"})
	require.NoError(t, err)
	require.Len(t, list, 1)
	_, err = b.s.Get(ctx, "alice", "not-an-id")
	require.ErrorIs(t, err, greenq.ErrNotFound)
}

// TestPauseEvents: the ids a planner round asks to pause reach every
// subscriber, in order, over Redis pub/sub.
func TestPauseEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := b.s.PauseEvents(ctx)
	require.NoError(t, b.s.publishPauses(ctx, []string{"j1", "j2"}))
	for _, want := range []string{"j1", "j2"} {
		select {
		case id := <-events:
			require.Equal(t, want, id)
		case <-time.After(5 * time.Second):
			t.Fatal("no pause event for", want)
		}
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := b.s.CancelEvents(ctx)
	for _, st := range greenq.States {
		t.Run(string(st), func(t *testing.T) {
			j := b.submit(t, "alice")
			b.force(t, j.ID, st)
			got, err := b.s.Cancel(ctx, "alice", j.ID)
			if st.Final() {
				requireCode(t, err, greenq.CodeConflict)
				return
			}
			require.NoError(t, err)
			require.Equal(t, greenq.StateCancelled, got.State)
			select {
			case id := <-events:
				require.Equal(t, j.ID, id)
			case <-time.After(5 * time.Second):
				t.Fatal("no cancel event")
			}
			// A cancelled job is off the release schedule.
			_, err = b.rdb.ZScore(ctx, b.s.k.release(), j.ID).Result()
			require.Error(t, err)
		})
	}
}

func TestListPagingAndFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	var made []*greenq.Job
	for i := range 25 {
		made = append(made, b.submit(t, "alice", func(r *greenq.SubmitRequest) {
			r.Tags = map[string]string{"team": []string{"a", "b"}[i%2]}
		}))
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		jobs, next, err := b.s.List(ctx, ListOptions{Tenant: "alice", Limit: 10, Cursor: cursor})
		require.NoError(t, err)
		for _, j := range jobs {
			seen = append(seen, j.ID)
		}
		if next == "" {
			break
		}
		require.Less(t, page, 5)
		cursor = next
	}
	require.Len(t, seen, 25)
	for i, id := range seen {
		require.Equal(t, made[24-i].ID, id, "newest first, no gaps or repeats")
	}

	b.force(t, made[3].ID, greenq.StateRunning)
	jobs, _, err := b.s.List(ctx, ListOptions{State: greenq.StateRunning, Tenant: "alice"})
	require.NoError(t, err)
	require.Len(t, jobs, 1)
	require.Equal(t, made[3].ID, jobs[0].ID)
	jobs, _, err = b.s.List(ctx, ListOptions{Region: b.regions[0]})
	require.NoError(t, err)
	require.NotEmpty(t, jobs)
	for _, j := range jobs {
		in := j.Plan != nil && j.Plan.Region == b.regions[0] || j.Run != nil && j.Run.Region == b.regions[0]
		require.True(t, in, "job %s is neither planned nor run in %s", j.ID, b.regions[0])
	}
	jobs, _, err = b.s.List(ctx, ListOptions{Region: "elsewhere"})
	require.NoError(t, err)
	require.Empty(t, jobs)
	jobs, _, err = b.s.List(ctx, ListOptions{Tags: map[string]string{"team": "b"}})
	require.NoError(t, err)
	require.Len(t, jobs, 12)

	_, _, err = b.s.List(ctx, ListOptions{State: "bogus"})
	requireCode(t, err, greenq.CodeInvalidArgument)
	_, _, err = b.s.List(ctx, ListOptions{Limit: 5000})
	requireCode(t, err, greenq.CodeInvalidArgument)
	_, _, err = b.s.List(ctx, ListOptions{Cursor: "x"})
	requireCode(t, err, greenq.CodeInvalidArgument)
}

func TestFinishMeasuresAndNeverDoubleCounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Name, r.Interruptible = "resnet", true })
	b.force(t, j.ID, greenq.StateReleased)
	start := b.clk.Now()
	_, err := b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w1", StartedAt: start})
	require.NoError(t, err)
	seg1 := greenq.RunSegment{Region: b.regions[0], Worker: "w1", Start: start, End: start.Add(20 * time.Minute), EnergyKWh: 0.1}
	paused, err := b.s.Finish(ctx, j.ID, FinishRequest{State: greenq.StatePlanned, Segment: seg1})
	require.NoError(t, err)
	require.Equal(t, greenq.StatePlanned, paused.State)
	require.Len(t, paused.Segments, 1)

	// Released again, retried by asynq (running → running), then done.
	b.force(t, j.ID, greenq.StateReleased)
	_, err = b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w1"})
	require.NoError(t, err)
	run, err := b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w2"})
	require.NoError(t, err)
	require.Equal(t, 3, run.Attempts)
	require.Equal(t, 3, run.Run.Attempt)
	seg2 := greenq.RunSegment{Region: b.regions[0], Worker: "w2", Start: start.Add(time.Hour), End: start.Add(time.Hour + 10*time.Minute), EnergyKWh: 0.05}
	f := FinishRequest{State: greenq.StateSucceeded, Segment: seg2, Receipt: &greenq.Receipt{EnergyKWh: 0.15, DurationS: 1800}}
	done, err := b.s.Finish(ctx, j.ID, f)
	require.NoError(t, err)
	require.Equal(t, greenq.StateSucceeded, done.State)
	require.Len(t, done.Segments, 2)
	require.Equal(t, 0, *done.Run.ExitCode)
	// A repeated report changes nothing.
	again, err := b.s.Finish(ctx, j.ID, f)
	require.NoError(t, err)
	require.Len(t, again.Segments, 2)

	_, ok, err := b.s.Measurement(ctx, "bob", "resnet")
	require.NoError(t, err)
	require.False(t, ok, "another tenant's runs are not this tenant's measurements")
	m, ok, err := b.s.Measurement(ctx, "alice", "resnet")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, 1, m.Runs)
	require.InDelta(t, 1800, m.DurationS, 1e-9)
	next := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Name, r.DurationEstimateS = "resnet", 0 })
	require.Equal(t, "measured", next.EstimateSource)
	require.Equal(t, int64(1800), next.DurationEstimateS)
	require.InDelta(t, 0.15*1000/0.5, next.PowerW, 1e-6, "power per GPU from the measured energy")
	user := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Name, r.DurationEstimateS = "resnet", 60 })
	require.Equal(t, "user", user.EstimateSource)
}

func TestWorkersAndRegions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "w1", Region: b.regions[0], GPUs: 4}, 10*time.Second))
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "w2", Region: b.regions[0], GPUs: 2}, 300*time.Millisecond))
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "w3", Region: b.regions[1], GPUs: 8}, 300*time.Millisecond))
	requireCode(t, b.s.Heartbeat(ctx, WorkerInfo{Region: b.regions[0]}, time.Second), greenq.CodeInvalidArgument)

	regions, err := b.s.Regions(ctx)
	require.NoError(t, err)
	require.Equal(t, 6, regions[0].Capacity)
	require.Equal(t, 2, regions[0].Workers)
	require.Equal(t, 8, regions[1].Capacity)

	// Expiry runs on Redis's clock, so the test clock cannot hurry it.
	var ws []WorkerInfo
	require.Eventually(t, func() bool {
		ws, err = b.s.Workers(ctx)
		require.NoError(t, err)
		return len(ws) == 1
	}, 5*time.Second, 50*time.Millisecond, "the short heartbeats expire")
	require.Equal(t, "w1", ws[0].ID)
	regions, err = b.s.Regions(ctx)
	require.NoError(t, err)
	require.Equal(t, 4, regions[0].Capacity)
	require.Equal(t, 0, regions[1].Capacity)
}

func TestHeartbeatsIgnoreWorkerClock(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, skew := range []time.Duration{-5 * time.Minute, 5 * time.Minute} {
		// A worker whose clock is off writes through a store on that clock.
		skewed, err := NewStore(b.rdb, Config{Prefix: b.prefix, Regions: b.s.regions, Now: func() time.Time { return time.Now().Add(skew) }})
		require.NoError(t, err)
		id := fmt.Sprintf("w%s", skew)
		require.NoError(t, skewed.Heartbeat(ctx, WorkerInfo{ID: id, Region: b.regions[0], GPUs: 1}, 300*time.Millisecond))
		live := func() bool {
			ws, err := b.s.Workers(ctx)
			require.NoError(t, err)
			for _, w := range ws {
				if w.ID == id {
					return true
				}
			}
			return false
		}
		require.True(t, live(), "worker %s (clock %s) is live to the server", id, skew)
		require.Eventually(t, func() bool { return !live() }, 5*time.Second, 50*time.Millisecond,
			"worker %s (clock %s) drops out once its heartbeat's TTL passes, whatever its clock", id, skew)
	}
}

func TestPing(t *testing.T) {
	t.Parallel()
	b := setup(t)
	require.NoError(t, b.s.Ping(context.Background()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, b.s.Ping(ctx))
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := NewStore(b.rdb, Config{Prefix: "a{b}"})
	require.ErrorContains(t, err, "Prefix")
	_, err = NewStore(b.rdb, Config{Regions: []greenq.Region{{Name: "x"}, {Name: "x"}}})
	require.ErrorContains(t, err, "Regions[1].Name")
	_, err = NewStore(nil, Config{})
	require.Error(t, err)
	_, err = NewPlanner(b.s, PlannerConfig{Replan: "every so often"})
	var ge *greenq.Error
	require.True(t, errors.As(err, &ge))
	require.Equal(t, "replan", ge.Field)
}

func TestIDs(t *testing.T) {
	t.Parallel()
	src := &idSource{read: func(b []byte) (int, error) {
		for i := range b {
			b[i] = 0xff
		}
		return len(b), nil
	}}
	now := time.UnixMilli(1_700_000_000_000)
	a := src.next(now)
	c := src.next(now) // same millisecond: random part wraps but still sorts after
	d := src.next(now.Add(time.Millisecond))
	require.True(t, validID(a) && validID(c) && validID(d))
	require.Less(t, a, c)
	require.Less(t, c, d)
	seen := map[string]bool{}
	for range 10000 {
		id := ids.next(time.Now())
		require.False(t, seen[id])
		seen[id] = true
	}
	require.False(t, validID("01234567890123456789012345X"))
	require.False(t, validID("0123456789012345678901234u"))
}

func TestSubmitGivesProvisionalPlan(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a, c := b.regions[0], b.regions[1]
	require.NoError(t, b.s.PutSeries(ctx, hourly(a, 300, 300)))
	require.NoError(t, b.s.PutSeries(ctx, hourly(c, 300, 40, 3, 4)))
	j := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	require.Equal(t, greenq.StatePending, j.State, "the leader's round plans it for real")
	require.NotNil(t, j.Plan, "a client sees a plan right after submitting")
	require.True(t, j.Plan.Provisional)
	require.Equal(t, c, j.Plan.Region, "the cleaner region")
	stored := mustGet(t, b, j.ID)
	require.Equal(t, j.Plan.Region, stored.Plan.Region)

	// The leader's round replaces it with a real plan.
	p, err := NewPlanner(b.s, PlannerConfig{Now: b.clk.Now, Logger: testLogger(t)})
	require.NoError(t, err)
	_, err = p.PlanOnce(ctx)
	require.NoError(t, err)
	planned := mustGet(t, b, j.ID)
	require.Equal(t, greenq.StatePlanned, planned.State)
	require.False(t, planned.Plan.Provisional)
}

func TestStartRefusesStaleRelease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	release := func() int {
		b.plan(t, j.ID, b.regions[0], t0, false)
		row, err := b.s.reserve(ctx, j.ID, t0)
		require.NoError(t, err)
		_, ok, err := b.s.markReleased(ctx, row, row.rel)
		require.NoError(t, err)
		require.True(t, ok)
		return row.rel
	}
	first := release()
	_, err := b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w1", Release: first})
	require.NoError(t, err)
	// Paused at a segment end, planned and released again.
	_, err = b.s.Finish(ctx, j.ID, FinishRequest{State: greenq.StatePlanned,
		Segment: greenq.RunSegment{Region: b.regions[0], Worker: "w1", Start: t0, End: t0.Add(time.Minute)}})
	require.NoError(t, err)
	second := release()
	require.Greater(t, second, first)

	_, err = b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w2", Release: first})
	require.Equal(t, greenq.CodeConflict, greenq.ErrorCodeOf(err), "a stale retry of the first release must not start the job again")
	started, err := b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w2", Release: second})
	require.NoError(t, err)
	require.Equal(t, second, started.Run.Release)
}

// The release loop enqueues a task before it marks the job released: a
// worker handed the task in between must be told to try again, never that
// the job cannot start (it would drop the task and the job would stay
// released with nothing to run it).
func TestStartDuringReleaseSaysTryAgain(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	b.plan(t, j.ID, b.regions[0], t0, false)
	row, err := b.s.reserve(ctx, j.ID, t0)
	require.NoError(t, err)

	_, err = b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w1", Release: row.rel})
	require.ErrorIs(t, err, ErrReleasing)
	require.Equal(t, greenq.CodeUnavailable, greenq.ErrorCodeOf(err))
	require.Equal(t, greenq.StatePlanned, mustGet(t, b, j.ID).State, "nothing changed")
	_, err = b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w1", Release: row.rel + 1})
	require.Equal(t, greenq.CodeConflict, greenq.ErrorCodeOf(err), "a task of another release is still refused")

	_, ok, err := b.s.markReleased(ctx, row, row.rel)
	require.NoError(t, err)
	require.True(t, ok)
	started, err := b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w1", Release: row.rel})
	require.NoError(t, err)
	require.Equal(t, greenq.StateRunning, started.State)
}

func TestStartRefusesJobRunningOnLiveWorker(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	j := b.submit(t, "alice", func(r *greenq.SubmitRequest) { r.Deadline = "10h" })
	b.force(t, j.ID, greenq.StateReleased)
	require.NoError(t, b.s.Heartbeat(ctx, WorkerInfo{ID: "w1", Region: b.regions[0], GPUs: 1}, 300*time.Millisecond))
	_, err := b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w1"})
	require.NoError(t, err)

	// Its task handed to w2 while w1 still beats: w1 runs it, w2 must not.
	_, err = b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w2"})
	require.Equal(t, greenq.CodeUnavailable, greenq.ErrorCodeOf(err), "two workers must never run one job at once; the task is retried later")

	// w1 died (its heartbeat lapsed): w2 may run the job again.
	require.Eventually(t, func() bool {
		run, err := b.s.Start(ctx, j.ID, greenq.Run{Region: b.regions[0], Worker: "w2"})
		return err == nil && run.Attempts == 2
	}, 5*time.Second, 50*time.Millisecond)
}
