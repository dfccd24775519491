package greenq

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func TestNormalizeDefaults(t *testing.T) {
	t.Parallel()
	r := SubmitRequest{Command: []string{"python", "train.py"}, Deadline: "24h"}
	d, err := r.Normalize(now, []string{"a"})
	require.NoError(t, err)
	require.Equal(t, now.Add(24*time.Hour), d)
	require.Equal(t, KindTrain, r.Kind)
	require.Equal(t, 1, r.GPUs)
	require.Equal(t, 1, r.Trials)

	s := SubmitRequest{Command: []string{"x"}, Deadline: "2026-11-29T00:00:00Z", Trials: 4}
	d, err = s.Normalize(now, nil)
	require.NoError(t, err)
	require.Equal(t, time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC), d)
	require.Equal(t, KindSweep, s.Kind, "several trials default to a sweep")
	require.Empty(t, s.HomeRegion, "no region known: none")

	h := SubmitRequest{Command: []string{"x"}, Deadline: "1h", Regions: []string{"b", "a"}}
	_, err = h.Normalize(now, []string{"a", "b"})
	require.NoError(t, err)
	require.Equal(t, "b", h.HomeRegion, "home defaults to the first of regions")
	_, err = r.Normalize(now, []string{"a"})
	require.NoError(t, err)
	require.Equal(t, "a", r.HomeRegion, "else the first configured region")
	h = SubmitRequest{Command: []string{"x"}, Deadline: "1h", Regions: []string{"b", "a"}, HomeRegion: "a"}
	_, err = h.Normalize(now, []string{"a", "b"})
	require.NoError(t, err)
	require.Equal(t, "a", h.HomeRegion)
}

func TestNormalizeRefuses(t *testing.T) {
	t.Parallel()
	ok := func() SubmitRequest { return SubmitRequest{Command: []string{"echo", "hi"}, Deadline: "2h"} }
	for _, tc := range []struct {
		name  string
		edit  func(*SubmitRequest)
		field string
	}{
		{"no deadline", func(r *SubmitRequest) { r.Deadline = "" }, "deadline"},
		{"unparseable deadline", func(r *SubmitRequest) { r.Deadline = "tomorrow" }, "deadline"},
		{"deadline in the past", func(r *SubmitRequest) { r.Deadline = "2020-01-01T00:00:00Z" }, "deadline"},
		{"negative duration deadline", func(r *SubmitRequest) { r.Deadline = "-1h" }, "deadline"},
		{"deadline absurdly far", func(r *SubmitRequest) { r.Deadline = "100000h" }, "deadline"},
		{"deadline shorter than duration", func(r *SubmitRequest) { r.DurationEstimateS = 3 * 3600 }, "deadline"},
		{"no command", func(r *SubmitRequest) { r.Command = nil }, "command"},
		{"empty program", func(r *SubmitRequest) { r.Command = []string{""} }, "command"},
		{"NUL in command", func(r *SubmitRequest) { r.Command = []string{"echo", "a\x00b"} }, "command"},
		{"invalid UTF-8 command", func(r *SubmitRequest) { r.Command = []string{"echo", "\xff\xfe"} }, "command"},
		{"too many args", func(r *SubmitRequest) { r.Command = make([]string, MaxCommandArgs+1); r.Command[0] = "x" }, "command"},
		{"huge command", func(r *SubmitRequest) { r.Command = []string{"echo", strings.Repeat("a", MaxCommandLen+1)} }, "command"},
		{"unknown kind", func(r *SubmitRequest) { r.Kind = "pretrain" }, "kind"},
		{"negative gpus", func(r *SubmitRequest) { r.GPUs = -1 }, "gpus"},
		{"too many gpus", func(r *SubmitRequest) { r.GPUs = MaxGPUs + 1 }, "gpus"},
		{"negative trials", func(r *SubmitRequest) { r.Trials = -3 }, "trials"},
		{"too many trials", func(r *SubmitRequest) { r.Trials = MaxTrials + 1 }, "trials"},
		{"negative duration", func(r *SubmitRequest) { r.DurationEstimateS = -5 }, "duration_estimate_s"},
		{"absurd duration", func(r *SubmitRequest) { r.DurationEstimateS = 1 << 40 }, "duration_estimate_s"},
		{"unknown region", func(r *SubmitRequest) { r.Regions = []string{"mars-1"} }, "regions"},
		{"unknown home region", func(r *SubmitRequest) { r.HomeRegion = "mars-1" }, "home_region"},
		{"home outside the regions", func(r *SubmitRequest) { r.Regions, r.HomeRegion = []string{"eu-north"}, "us-west" }, "home_region"},
		{"oversized name", func(r *SubmitRequest) { r.Name = strings.Repeat("n", MaxNameLen+1) }, "name"},
		{"invalid UTF-8 name", func(r *SubmitRequest) { r.Name = "\xc3\x28" }, "name"},
		{"NaN price", func(r *SubmitRequest) { r.MaxPriceUSDPerGPUHour = math.NaN() }, "max_price_usd_per_gpu_hour"},
		{"negative price", func(r *SubmitRequest) { r.MaxPriceUSDPerGPUHour = -1 }, "max_price_usd_per_gpu_hour"},
		{"infinite power", func(r *SubmitRequest) { r.PowerW = math.Inf(1) }, "power_w"},
		{"absurd power", func(r *SubmitRequest) { r.PowerW = 1e6 }, "power_w"},
		{"bad tag key", func(r *SubmitRequest) { r.Tags = map[string]string{"a=b": "c"} }, "tags"},
		{"empty tag key", func(r *SubmitRequest) { r.Tags = map[string]string{"": "c"} }, "tags"},
		{"huge key", func(r *SubmitRequest) { r.Key = strings.Repeat("k", 201) }, "key"},
		{"huge functional unit", func(r *SubmitRequest) { r.FunctionalUnit = strings.Repeat("u", 201) }, "functional_unit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := ok()
			tc.edit(&r)
			_, err := r.Normalize(now, []string{"eu-north", "us-west"})
			require.Error(t, err)
			var ge *Error
			require.ErrorAs(t, err, &ge)
			require.Equal(t, CodeInvalidArgument, ge.Code)
			require.Equal(t, tc.field, ge.Field, "error: %v", err)
			require.Equal(t, 2, ExitCode(ge.Code))
			require.Equal(t, 400, HTTPStatus(ge.Code))
		})
	}
}

func TestStateMachine(t *testing.T) {
	t.Parallel()
	for _, s := range States {
		if s.Final() {
			for _, to := range States {
				require.False(t, CanTransition(s, to), "%s is final but may go to %s", s, to)
			}
		}
	}
	for _, tc := range []struct {
		from, to State
		ok       bool
	}{
		{StatePending, StatePlanned, true},
		{StatePlanned, StateReleased, true},
		{StateReleased, StateRunning, true},
		{StateRunning, StateSucceeded, true},
		{StateRunning, StatePlanned, true}, // interruptible paused at a segment end
		{StatePending, StateRunning, false},
		{StatePending, StateSucceeded, false},
		{StatePlanned, StateSucceeded, false},
		{StateReleased, StateSucceeded, false},
		{StatePending, StateCancelled, true},
		{StateRunning, StateCancelled, true},
	} {
		require.Equal(t, tc.ok, CanTransition(tc.from, tc.to), "%s → %s", tc.from, tc.to)
	}
}

func TestErrorTable(t *testing.T) {
	t.Parallel()
	require.Equal(t, CodeNotFound, ErrorCodeOf(ErrNotFound))
	require.Equal(t, CodeInternal, ErrorCodeOf(errFake{}))
	require.Equal(t, 404, HTTPStatus(CodeNotFound))
	require.Equal(t, 503, HTTPStatus(CodeUnavailable))
	require.Equal(t, 500, HTTPStatus("nonsense"))
	require.Equal(t, 1, ExitCode(CodeUnavailable))
}

type errFake struct{}

func (errFake) Error() string { return "fake" }

func TestDefaultDurationWithin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		window, want time.Duration
	}{
		{48 * time.Hour, DefaultDuration},
		{4 * time.Hour, DefaultDuration},
		{3 * time.Hour, 45 * time.Minute},
		{50 * time.Minute, 12 * time.Minute}, // 12m30s, cut to whole minutes
		{2 * time.Minute, 30 * time.Second},
		{3 * time.Second, time.Second},
	} {
		got := DefaultDurationWithin(tc.window)
		require.Equal(t, tc.want, got, "window %s", tc.window)
		require.Less(t, got, max(tc.window, 2*time.Second), "window %s: fits with room to choose", tc.window)
	}
}

func TestDeadlineShorterThanEstimateReadsCleanly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		deadline string
		estS     int64
		want     string
	}{
		{"1m59.6s", 120, "leaves 1m59s, less than the duration estimate of 2m"},
		{"9h", 9*3600 + 42*60, "leaves 9h, less than the duration estimate of 9h42m"},
	} {
		r := SubmitRequest{Command: []string{"x"}, Deadline: tc.deadline, DurationEstimateS: tc.estS}
		_, err := r.Normalize(now, nil)
		require.ErrorContains(t, err, tc.want)
	}
	r := SubmitRequest{Command: []string{"x"}, Deadline: "2m", DurationEstimateS: 120}
	_, err := r.Normalize(now, nil)
	require.NoError(t, err, "an estimate equal to the time left fits")
}
