package greenq_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

func TestRegionPrices(t *testing.T) {
	t.Parallel()
	r := greenq.Region{Name: "tou", GPUPriceUSDPerHour: 4, PriceSchedule: []greenq.PriceStep{
		{FromHour: 22, ToHour: 6, USDPerGPUHour: 1}, {FromHour: 12, ToHour: 14, USDPerGPUHour: 6}}}
	at := func(h, m int) time.Time { return time.Date(2026, 3, 1, h, m, 0, 0, time.UTC) }
	require.Equal(t, 1.0, r.PriceAt(at(23, 0)))
	require.Equal(t, 1.0, r.PriceAt(at(5, 59)))
	require.Equal(t, 4.0, r.PriceAt(at(6, 0)))
	require.Equal(t, 6.0, r.PriceAt(at(13, 0)))
	require.Equal(t, 1.0, r.MinPrice())
	// 2 GPUs, 05:30–06:30: half an hour at $1 and half at $4 each.
	require.InDelta(t, 2*(0.5+2), r.CostUSD(2, at(5, 30), at(6, 30)), 1e-12)
	require.Zero(t, r.CostUSD(2, at(6, 30), at(6, 30)))
	require.InDelta(t, 3*24*(8*1+2*6+14*4)/24.0, r.CostUSD(3, at(0, 0), at(0, 0).Add(24*time.Hour)), 1e-9)
	require.Equal(t, 30.0, greenq.Region{EmbodiedGCO2PerGPUHour: 30}.Embodied(10))
	require.Equal(t, 10.0, greenq.Region{}.Embodied(10))
	require.Zero(t, greenq.Region{EmbodiedGCO2PerGPUHour: -1}.Embodied(10))
}

func TestCheckPriceCap(t *testing.T) {
	t.Parallel()
	known := []greenq.Region{{Name: "flat", GPUPriceUSDPerHour: 3},
		{Name: "tou", GPUPriceUSDPerHour: 5, PriceSchedule: []greenq.PriceStep{{FromHour: 0, ToHour: 4, USDPerGPUHour: 2}}}}
	require.NoError(t, greenq.CheckPriceCap(0, nil, known), "no cap")
	require.NoError(t, greenq.CheckPriceCap(2, nil, known), "tou at night")
	require.NoError(t, greenq.CheckPriceCap(3, []string{"flat"}, known))
	err := greenq.CheckPriceCap(2.5, []string{"flat"}, known)
	var ge *greenq.Error
	require.True(t, errors.As(err, &ge))
	require.Equal(t, "max_price_usd_per_gpu_hour", ge.Field)
	require.Contains(t, ge.Message, "flat: $3.00")
	require.Error(t, greenq.CheckPriceCap(1, nil, known))
	require.NoError(t, greenq.CheckPriceCap(1, nil, nil), "nothing known: the server decides")
}

func TestRestsOnForecast(t *testing.T) {
	t.Parallel()
	for src, want := range map[string]bool{
		"file:actual": false, "file:actual+forecast": true, "plan:forecast": true, "file:replay(2023):forecast": true,
		"greenq-forecaster (ukci down):estimate": true, "file:actual,electricitymaps:actual": false,
		"file:actual,file:forecast": true, "unavailable": false, "": false,
	} {
		require.Equal(t, want, greenq.Receipt{IntensitySource: src}.RestsOnForecast(), src)
	}
}
