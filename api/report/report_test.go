package report

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// loadJobs reads the fixture: finished jobs with receipts whose
// intensities are real hourly values (testdata/README.md).
func loadJobs(t *testing.T) []*greenq.Job {
	t.Helper()
	b, err := os.ReadFile("testdata/jobs.json")
	require.NoError(t, err)
	var jobs []*greenq.Job
	require.NoError(t, json.Unmarshal(b, &jobs))
	return jobs
}

// expected holds totals computed straight from the receipts, by a route
// independent of Build (no JobLine, no summarise).
type expected struct {
	jobs, receipts                                   int
	gpuHours, kwh, gpu, cpu, ram, facility, embodied float64
	cost, deferralS, plannedCost                     float64
	gco2, baseline, saved, waiting, moving           map[string]float64
	signalJobs                                       map[string]int
	notFinished                                      int
}

// independent sums the finished jobs' receipts; the jobs not finished
// count apart, with their plans' cost.
func independent(jobs []*greenq.Job) expected {
	e := expected{gco2: map[string]float64{}, baseline: map[string]float64{}, saved: map[string]float64{},
		waiting: map[string]float64{}, moving: map[string]float64{}, signalJobs: map[string]int{}}
	for _, j := range jobs {
		if !j.State.Final() {
			e.notFinished++
			if j.Plan != nil {
				e.plannedCost += j.Plan.ExpectedCostUSD
			}
			continue
		}
		e.jobs++
		rc := j.Receipt
		if rc == nil {
			continue
		}
		e.receipts++
		e.gpuHours += float64(j.GPUs) * rc.DurationS / 3600
		e.kwh += rc.EnergyKWh
		e.gpu += rc.GPUEnergyKWh
		e.cpu += rc.CPUEnergyKWh
		e.ram += rc.RAMEnergyKWh
		e.facility += rc.EnergyKWh * rc.PUE
		e.embodied += rc.EmbodiedGCO2
		e.cost += rc.GPUHours * rc.PriceUSDPerGPUHour // measured, not planned
		e.deferralS += j.Run.StartedAt.Sub(j.SubmittedAt).Seconds()
		e.gco2[rc.Signal] += rc.GCO2
		e.baseline[rc.Signal] += rc.BaselineGCO2
		e.saved[rc.Signal] += rc.SavedGCO2
		e.waiting[rc.Signal] += rc.SavedByWaitingGCO2
		e.moving[rc.Signal] += rc.SavedByMovingGCO2
		e.signalJobs[rc.Signal]++
	}
	return e
}

// sameToUnit requires got to equal want to the unit and, beyond that, to
// floating-point noise.
func sameToUnit(t *testing.T, name string, want, got float64) {
	t.Helper()
	require.Equal(t, math.Round(want), math.Round(got), name)
	require.InDelta(t, want, got, 1e-9*max(1, math.Abs(want)), name)
}

func TestBuildReproducesReceiptTotalsInJSON(t *testing.T) {
	t.Parallel()
	jobs := loadJobs(t)
	want := independent(jobs)
	var buf bytes.Buffer
	require.NoError(t, Render(&buf, Build(jobs, Options{}), "json"))
	var got Report
	require.NoError(t, json.Unmarshal(buf.Bytes(), &got))
	tot := got.Totals

	require.Equal(t, want.jobs, tot.Jobs)
	require.Equal(t, want.receipts, tot.Receipts)
	require.Equal(t, map[greenq.State]int{"succeeded": 8, "failed": 1, "cancelled": 1, "expired": 1}, tot.JobsByState, "finished jobs only")
	require.Equal(t, 1, got.NotFinished.Jobs, "the running job counts apart")
	require.Equal(t, map[greenq.State]int{"running": 1}, got.NotFinished.JobsByState)
	sameToUnit(t, "planned cost", want.plannedCost, got.NotFinished.ExpectedCostUSD.Value)
	require.Equal(t, BasisPlanned, got.NotFinished.ExpectedCostUSD.Basis)
	require.Equal(t, 1, tot.ReceiptsOnForecast)
	require.Equal(t, 1, tot.ReceiptsRestated)
	for _, c := range []struct {
		name      string
		want, got float64
	}{
		{"gpu_hours", want.gpuHours, tot.GPUHours.Value},
		{"energy_kwh ×1000 (Wh)", want.kwh * 1000, tot.EnergyKWh.Value * 1000},
		{"gpu_energy_kwh ×1000", want.gpu * 1000, tot.GPUEnergyKWh.Value * 1000},
		{"cpu_energy_kwh ×1000", want.cpu * 1000, tot.CPUEnergyKWh.Value * 1000},
		{"ram_energy_kwh ×1000", want.ram * 1000, tot.RAMEnergyKWh.Value * 1000},
		{"facility_kwh ×1000", want.facility * 1000, tot.FacilityKWh.Value * 1000},
		{"embodied_gco2", want.embodied, tot.EmbodiedGCO2.Value},
		{"cost_usd ×100 (cents)", want.cost * 100, tot.CostUSD.Value * 100},
		{"deferral_s", want.deferralS, tot.Deferral.TotalHours * 3600},
		{"measured+estimated", want.kwh, tot.MeasuredKWh + tot.EstimatedKWh},
	} {
		sameToUnit(t, c.name, c.want, c.got)
	}
	require.Len(t, tot.Emissions, len(want.gco2), "one entry per signal, never summed")
	for _, e := range tot.Emissions {
		require.Equal(t, want.signalJobs[e.Signal], e.Jobs, e.Signal)
		sameToUnit(t, "gco2 "+e.Signal, want.gco2[e.Signal], e.GCO2.Value)
		sameToUnit(t, "baseline "+e.Signal, want.baseline[e.Signal], e.BaselineGCO2.Value)
		sameToUnit(t, "saved "+e.Signal, want.saved[e.Signal], e.SavedGCO2.Value)
		sameToUnit(t, "waiting "+e.Signal, want.waiting[e.Signal], e.SavedByWaitingGCO2.Value)
		sameToUnit(t, "moving "+e.Signal, want.moving[e.Signal], e.SavedByMovingGCO2.Value)
		require.InDelta(t, e.SavedGCO2.Value, e.SavedByWaitingGCO2.Value+e.SavedByMovingGCO2.Value, 1e-6, "the split adds up")
		require.Equal(t, BasisCounterfactual, e.BaselineGCO2.Basis)
		require.NotEmpty(t, e.GCO2.Sources, "emissions name their provider")
	}
	// How the figures were obtained travels with them.
	require.Equal(t, BasisMixed, tot.EnergyKWh.Basis)
	require.Equal(t, BasisEstimated, tot.RAMEnergyKWh.Basis)
	require.Equal(t, BasisMeasured, tot.CostUSD.Basis)
	require.Contains(t, tot.EnergyKWh.Sources, "gpu:nvml")
	require.Contains(t, tot.EnergyKWh.Sources, "gpu:estimate")
	require.Equal(t, []string{"electricitymaps:actual", "electricitymaps:actual+forecast", "watttime:actual"}, tot.IntensitySources)
	require.Equal(t, []string{"ca-on", "gb", "us-west"}, tot.Regions)
	require.Equal(t, 8, tot.Deferral.DeferredJobs, "all but the inference job that started 30 s after submit")
	require.Equal(t, 7, tot.Deferral.MovedJobs)
	require.Len(t, got.Jobs, len(jobs)-1, "a line per finished job")
}

func TestBreakdownsAddUpToTotals(t *testing.T) {
	t.Parallel()
	r := Build(loadJobs(t), Options{})
	for name, groups := range map[string][]Summary{"region": r.ByRegion, "tenant": r.ByTenant, "month": r.ByMonth} {
		var jobs, receipts int
		var kwh, cost float64
		gco2 := map[string]float64{}
		for _, g := range groups {
			jobs += g.Jobs
			receipts += g.Receipts
			kwh += g.EnergyKWh.Value
			cost += g.CostUSD.Value
			for _, e := range g.Emissions {
				gco2[e.Signal] += e.GCO2.Value
			}
		}
		require.Equal(t, r.Totals.Jobs, jobs, name)
		require.Equal(t, r.Totals.Receipts, receipts, name)
		require.InDelta(t, r.Totals.EnergyKWh.Value, kwh, 1e-9, name)
		require.InDelta(t, r.Totals.CostUSD.Value, cost, 1e-9, name)
		for _, e := range r.Totals.Emissions {
			require.InDelta(t, e.GCO2.Value, gco2[e.Signal], 1e-9, name)
		}
	}
	var gpuModelReceipts int
	for _, g := range r.ByGPUModel {
		gpuModelReceipts += g.Receipts
	}
	require.Equal(t, r.Totals.Receipts, gpuModelReceipts)
	require.Equal(t, []string{"2023-01", "2023-02", "2023-06"}, keys(r.ByMonth))
	require.Equal(t, []string{"paper=neurips-x", "team=nlp", "team=vision"}, keys(r.ByTag))
}

func keys(s []Summary) []string {
	var out []string
	for _, g := range s {
		out = append(out, g.Key)
	}
	return out
}

func TestBuildIsDeterministic(t *testing.T) {
	t.Parallel()
	jobs := loadJobs(t)
	render := func(js []*greenq.Job) string {
		var buf bytes.Buffer
		require.NoError(t, Render(&buf, Build(js, Options{}), "json"))
		return buf.String()
	}
	want := render(jobs)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5 {
		shuffled := slices.Clone(jobs)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		require.Equal(t, want, render(shuffled))
	}
}

func TestCSVReproducesReceiptTotals(t *testing.T) {
	t.Parallel()
	jobs := loadJobs(t)
	want := independent(jobs)
	var buf bytes.Buffer
	require.NoError(t, Render(&buf, Build(jobs, Options{}), "csv"))
	recs, err := csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Equal(t, CSVHeader, recs[0])
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	f := func(rec []string, name string) float64 {
		v, err := strconv.ParseFloat(rec[col[name]], 64)
		require.NoError(t, err, name)
		return v
	}
	// Every row is a finished job: a column sums to the total, as pandas
	// would sum it.
	sum := map[string]float64{}
	for _, rec := range recs[1:] {
		require.NotEqual(t, "TOTAL", rec[col["id"]])
		for _, c := range []string{"energy_kwh", "cost_usd", "gpu_hours", "facility_kwh"} {
			sum[c] += f(rec, c)
		}
		require.InDelta(t, f(rec, "saved_gco2"), f(rec, "saved_by_waiting_gco2")+f(rec, "saved_by_moving_gco2"), 1e-6)
	}
	require.Equal(t, want.jobs, len(recs)-1)
	sameToUnit(t, "energy Wh (job rows)", want.kwh*1000, sum["energy_kwh"]*1000)
	sameToUnit(t, "cost cents (job rows)", want.cost*100, sum["cost_usd"]*100)
	sameToUnit(t, "gpu hours (job rows)", want.gpuHours, sum["gpu_hours"])

	// The totals are their own CSV: a row per signal, and the jobs not
	// finished with their planned cost.
	buf.Reset()
	require.NoError(t, RenderTotals(&buf, Build(jobs, Options{})))
	recs, err = csv.NewReader(&buf).ReadAll()
	require.NoError(t, err)
	require.Equal(t, CSVTotalsHeader, recs[0])
	col = map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	totals := map[string][]string{}
	for _, rec := range recs[1:] {
		totals[rec[col["signal"]]] = rec
	}
	require.Len(t, totals, 3, "average, marginal, not-finished")
	sameToUnit(t, "planned cost", want.plannedCost, f(totals["not-finished"], "planned_cost_usd"))
	require.Equal(t, "1", totals["not-finished"][col["jobs"]])
	delete(totals, "not-finished")
	var kwh, cost, gpuHours, facility float64
	for sg, rec := range totals {
		sameToUnit(t, "gco2 "+sg, want.gco2[sg], f(rec, "gco2"))
		sameToUnit(t, "baseline "+sg, want.baseline[sg], f(rec, "baseline_gco2"))
		sameToUnit(t, "saved "+sg, want.saved[sg], f(rec, "saved_gco2"))
		kwh += f(rec, "energy_kwh")
		cost += f(rec, "cost_usd")
		gpuHours += f(rec, "gpu_hours")
		facility += f(rec, "facility_kwh")
	}
	// Energy, hours and cost do add across signals; emissions do not.
	sameToUnit(t, "energy Wh", want.kwh*1000, kwh*1000)
	sameToUnit(t, "facility Wh", want.facility*1000, facility*1000)
	sameToUnit(t, "cost cents", want.cost*100, cost*100)
	sameToUnit(t, "gpu hours", want.gpuHours, gpuHours)
}

func TestSelect(t *testing.T) {
	t.Parallel()
	jobs := loadJobs(t)
	feb := time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)
	mar := time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"all", Options{}, []string{"j01", "j02", "j03", "j04", "j05", "j06", "j07", "j08", "j09", "j10", "j11", "j12"}},
		{"tag", Options{Tags: map[string]string{"paper": "neurips-x"}}, []string{"j01", "j02", "j03", "j04", "j05", "j09", "j12"}},
		{"two tags", Options{Tags: map[string]string{"paper": "neurips-x", "team": "vision"}}, nil},
		{"tag and tenant", Options{Tags: map[string]string{"team": "nlp"}, Tenant: "carol"}, []string{"j11"}},
		{"tenant", Options{Tenant: "bob"}, []string{"j06", "j07", "j08", "j10"}},
		{"region ran in", Options{Region: "gb"}, []string{"j02", "j08", "j12"}},
		{"group", Options{Group: "sw-1"}, []string{"j03", "j04", "j05"}},
		{"february by run start, else submit", Options{From: feb, To: mar}, []string{"j06", "j07", "j08", "j10"}},
		{"to is exclusive", Options{To: time.Date(2023, 1, 10, 10, 0, 0, 0, time.UTC)}, nil},
		{"from is inclusive", Options{From: time.Date(2023, 6, 12, 4, 0, 0, 0, time.UTC)}, []string{"j12"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for _, j := range Select(jobs, tc.o) {
				got = append(got, j.ID)
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query     string
		want      Options
		wantField string
	}{
		{query: "", want: Options{}},
		{query: "tag=paper=neurips-x&tag=team=vision&tenant=alice&region=gb&group=sw-1",
			want: Options{Tags: map[string]string{"paper": "neurips-x", "team": "vision"}, Tenant: "alice", Region: "gb", Group: "sw-1"}},
		{query: "tag=expr=a=b", want: Options{Tags: map[string]string{"expr": "a=b"}}},
		{query: "from=2023-01-01T00:00:00Z&to=2023-02-01T01:00:00%2B01:00",
			want: Options{From: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)}},
		{query: "from=2023-01-01", want: Options{From: time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{query: "idle_below=35", want: Options{IdleBelowPct: 35}},
		{query: "format=csv", want: Options{}},
		{query: "tag=paper", wantField: "tag"},
		{query: "tag==x", wantField: "tag"},
		{query: "tag=a=1&tag=a=2", wantField: "tag"},
		{query: "from=yesterday", wantField: "from"},
		{query: "to=2023-13-01", wantField: "to"},
		{query: "from=2023-02-01&to=2023-01-01", wantField: "to"},
		{query: "from=2023-02-01&to=2023-02-01", wantField: "to"},
		{query: "idle_below=0", wantField: "idle_below"},
		{query: "idle_below=x", wantField: "idle_below"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			t.Parallel()
			q, err := url.ParseQuery(tc.query)
			require.NoError(t, err)
			got, err := ParseOptions(q)
			if tc.wantField != "" {
				var ge *greenq.Error
				require.True(t, errors.As(err, &ge), "%v", err)
				require.Equal(t, greenq.CodeInvalidArgument, ge.Code)
				require.Equal(t, tc.wantField, ge.Field)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestIdleGPUsAreFlagged(t *testing.T) {
	t.Parallel()
	jobs := loadJobs(t)
	for _, tc := range []struct {
		name      string
		idleBelow float64
		wantJobs  []string
	}{
		{"default 20 %", 0, []string{"j06", "j08"}},
		{"stricter 75 %", 75, []string{"j03", "j04", "j06", "j08", "j11"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := Build(jobs, Options{IdleBelowPct: tc.idleBelow})
			u := r.Utilisation
			require.Equal(t, tc.wantJobs, u.IdleJobs)
			require.Equal(t, 7, u.SampledJobs)
			require.Equal(t, 2, u.UnsampledJobs, "estimated-energy jobs have no utilisation")

			// Idle GPU-hours and their energy per pool, from the receipts.
			idleH, idleKWh := map[string]float64{}, map[string]float64{}
			for _, j := range jobs {
				rc := j.Receipt
				if rc == nil || rc.GPUUtilizationPct == 0 {
					continue
				}
				share := 1 - rc.GPUUtilizationPct/100
				idleH[j.Run.Region] += float64(j.GPUs) * rc.DurationS / 3600 * share
				idleKWh[j.Run.Region] += rc.GPUEnergyKWh * share
			}
			require.Len(t, u.Pools, len(idleH))
			for i, p := range u.Pools {
				require.InDelta(t, idleH[p.Region], p.IdleGPUHours, 1e-9, p.Region)
				require.InDelta(t, idleKWh[p.Region], p.IdleKWh, 1e-9, p.Region)
				if i > 0 {
					require.GreaterOrEqual(t, u.Pools[i-1].IdleGPUHours, p.IdleGPUHours, "most idle first")
				}
			}
			require.Equal(t, "ca-on", u.Pools[0].Region)
		})
	}
}

func TestIdleAllRunIsNotUnsampled(t *testing.T) {
	t.Parallel()
	start := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	job := func(id string, samples int) *greenq.Job {
		end := start.Add(time.Hour)
		return &greenq.Job{ID: id, State: greenq.StateSucceeded, GPUs: 1, SubmittedAt: start,
			Run: &greenq.Run{Region: "r", StartedAt: start, FinishedAt: &end},
			Receipt: &greenq.Receipt{EnergyKWh: 0.1, GPUEnergyKWh: 0.1, EnergySource: "nvml", PUE: 1, Signal: "average",
				IntensityGCO2PerKWh: 100, GCO2: 10, DurationS: 3600, GPUUtilizationSamples: samples}}
	}
	r := Build([]*greenq.Job{job("idle", 3600), job("unknown", 0)}, Options{})
	require.Equal(t, []string{"idle"}, r.Utilisation.IdleJobs, "0 % over 3600 samples is an idle GPU")
	require.Equal(t, 1, r.Utilisation.SampledJobs)
	require.Equal(t, 1, r.Utilisation.UnsampledJobs, "no samples: utilisation unknown, not idle")
}

func TestRenderRejectsUnknownFormat(t *testing.T) {
	t.Parallel()
	err := Render(&bytes.Buffer{}, Report{}, "pdf")
	var ge *greenq.Error
	require.True(t, errors.As(err, &ge))
	require.Equal(t, "format", ge.Field)
}

func TestEmptySelectionRendersEveryFormat(t *testing.T) {
	t.Parallel()
	r := Build(loadJobs(t), Options{Tenant: "nobody"})
	require.Zero(t, r.Totals.Jobs)
	for _, f := range Formats {
		var buf bytes.Buffer
		require.NoError(t, Render(&buf, r, f), f)
		require.NotEmpty(t, buf.String(), f)
	}
}

func TestSig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {1, "1.00"}, {12345, "12300"}, {0.0012345, "0.00123"}, {9.996, "10.0"},
		{999.6, "1000"}, {-3.14159, "-3.14"}, {61.05, "61.0"}, {0.5, "0.500"},
	} {
		require.Equal(t, tc.want, sig(tc.in), "%v", tc.in)
	}
	require.Equal(t, "1.23 kgCO2e", mass(1234))
	require.Equal(t, "724 Wh", energy(0.724))
	require.Equal(t, "30.0 s", dur(30.0/3600))
}
