package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// TestReceiptsSayWhatHappened runs the real binary as the README says: a
// server whose config sets the region's PUE, price schedule and embodied
// factor, and a worker started with nothing but --region and --gpus (and
// where Redis is). The receipt carries the server's PUE and prices, its
// cost is the GPU-hours run × the price in force, and its savings split
// adds up; a price cap no allowed region ever meets is refused at submit
// with exit 2 naming --max-price.
func TestReceiptsSayWhatHappened(t *testing.T) {
	t.Parallel()
	r := startRedis(t)
	dir := t.TempDir()
	writeSeries(t, dir, time.Now().Add(-30*time.Minute), time.Hour, "US-CAL-CISO")
	// $3 by day, $2 in the hour the job runs in (UTC), so the schedule
	// decides the price; PUE 1.3 and 25 g/GPU-h only the server knows.
	h := time.Now().UTC().Hour()
	cfg := fmt.Sprintf(`redis: %s
slot: 1s
replan: "@every 2s"
refresh: "@every 1s"
regions:
  - name: us
    zone: US-CAL-CISO
    provider: file
    pue: 1.3
    gpu_price_usd_per_hour: 3
    price_schedule: [{from_hour: %d, to_hour: %d, usd_per_gpu_hour: 2}]
    embodied_gco2_per_gpu_hour: 25
providers:
  file: {dir: %q}
`, r.URL(), h, h+1, dir)
	cfgPath := filepath.Join(t.TempDir(), "greenq.yaml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	srv := startServer(t, "server", cfgPath)
	w := startProc(t, "worker", greenqBin, "worker", "--redis", r.URL(), "--region", "us", "--gpus", "1", "--id", "w-readme", "--grace", "10s")
	srv.API.waitReady(t, true, "us")

	code, out, errOut := cli(t, "submit", "--api", srv.URL, "--deadline", "10m", "--duration", "5s", "--name", "e2e-receipt", "--", "sh", "-c", "sleep 1")
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "home region us", "the home region is shown at submit")
	id := strings.TrimSpace(out)
	j := srv.API.waitFinal(t, id, 60*time.Second)
	require.Equal(t, greenq.StateSucceeded, j.State, "%s\n%s", j.Error, tail(w.Log(), 3000))
	rc := j.Receipt
	require.NotNil(t, rc)
	require.Equal(t, 1.3, rc.PUE, "the server's PUE on a worker with no config")
	require.Equal(t, "us", j.HomeRegion)
	require.Equal(t, "us", rc.BaselineRegion)
	require.Greater(t, rc.GPUHours, 0.0)
	if time.Now().UTC().Hour() == h && j.Run.StartedAt.UTC().Hour() == h {
		require.InDelta(t, 2.0, rc.PriceUSDPerGPUHour, 1e-9, "the schedule's price in force")
	}
	require.InDelta(t, rc.GPUHours*rc.PriceUSDPerGPUHour, rc.CostUSD, 1e-12, "cost_usd = GPU-hours × price")
	require.InDelta(t, rc.GPUHours*25, rc.EmbodiedGCO2, 1e-9, "the server's embodied factor")
	require.InDelta(t, rc.SavedGCO2, rc.SavedByWaitingGCO2+rc.SavedByMovingGCO2, 1e-9)
	require.NotContains(t, w.Log(), "disagrees", "a worker with no config has nothing to disagree with")

	code, _, errOut = cli(t, "submit", "--api", srv.URL, "--deadline", "1h", "--max-price", "1", "--", "true")
	require.Equal(t, 2, code, errOut)
	require.Contains(t, errOut, "--max-price")
	require.Contains(t, errOut, "could never run")
}
