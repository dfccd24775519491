package config

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

const good = `
redis: redis://127.0.0.1:6379/0
slot: 1s
replan: "@every 5s"
objective: {carbon_price_usd_per_tonne: 100}
regions:
  - {name: eu-north, zone: SE, provider: electricitymaps, pue: 1.1, gpu_price_usd_per_hour: 2.5}
  - {name: uk-south, zone: GB, max_gpus_per_worker: 8}
tokens:
  - {tenant: alice, sha256: 2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90}
`

func load(t *testing.T, text string) (Config, error) {
	t.Helper()
	c, err := Parse(strings.NewReader(text))
	if err != nil {
		return c, err
	}
	c.setDefaults()
	return c, c.Validate()
}

func TestParseGood(t *testing.T) {
	t.Parallel()
	c, err := load(t, good)
	require.NoError(t, err)
	require.Equal(t, time.Second, time.Duration(c.Slot))
	require.Equal(t, []string{"eu-north", "uk-south"}, c.RegionNames())
	require.Equal(t, 8, c.Regions[1].MaxGPUsPerWorker)
	require.Equal(t, "file", c.Regions[1].Provider, "provider defaults to file")
	require.Equal(t, 1.0, c.Regions[1].PUE, "PUE defaults to 1")
	require.Equal(t, "127.0.0.1:8080", c.Listen)
	require.Equal(t, 100.0, c.Objective.CarbonPriceUSDPerTonne)
}

func TestCloudRegionZones(t *testing.T) {
	t.Parallel()
	c, err := load(t, "regions: [{name: eu-west-2, provider: electricitymaps}, {name: us-west-1, provider: watttime}, {name: eu-west-2b, zone: GB-1, provider: ukci}]\n")
	require.NoError(t, err)
	require.Equal(t, "GB", c.Regions[0].Zone)
	require.Equal(t, "CAISO_NORTH", c.Regions[1].Zone)
	require.Equal(t, "GB-1", c.Regions[2].Zone, "an explicit zone wins")
}

func TestParseBad(t *testing.T) {
	t.Parallel()
	region := "regions: [{name: a, zone: SE}]\n"
	for _, tc := range []struct {
		name, text, field string
	}{
		{"no regions", "slot: 15m\n", "regions"},
		{"unknown key", region + "colour: green\n", "config"},
		{"bad slot", region + "slot: soon\n", "config"},
		{"slot under 1s", region + "slot: 500ms\n", "slot"},
		{"invalid cron", region + "replan: \"every five minutes\"\n", "replan"},
		{"invalid refresh cron", region + "refresh: \"@often\"\n", "refresh"},
		{"negative carbon price", region + "objective: {carbon_price_usd_per_tonne: -1}\n", "objective.carbon_price_usd_per_tonne"},
		{"hysteresis 1", region + "planner: {hysteresis: 1}\n", "planner.hysteresis"},
		{"bad region name", "regions: [{name: 'EU North', zone: SE}]\n", "regions[0].name"},
		{"duplicate region", "regions: [{name: a, zone: SE}, {name: a, zone: GB}]\n", "regions[1].name"},
		{"no zone", "regions: [{name: a}]\n", "regions[0].zone"},
		{"cloud region without a watttime zone", "regions: [{name: ap-south-1, provider: watttime}]\n", "regions[0].zone"},
		{"unknown provider", "regions: [{name: a, zone: SE, provider: oracle}]\n", "regions[0].provider"},
		{"pue below 1", "regions: [{name: a, zone: SE, pue: 0.5}]\n", "regions[0].pue"},
		{"negative price", "regions: [{name: a, zone: SE, gpu_price_usd_per_hour: -2}]\n", "regions[0].gpu_price_usd_per_hour"},
		{"bad schedule", "regions: [{name: a, zone: SE, price_schedule: [{from_hour: 25, to_hour: 3, usd_per_gpu_hour: 1}]}]\n", "regions[0].price_schedule[0]"},
		{"negative max gpus per worker", "regions: [{name: a, zone: SE, max_gpus_per_worker: -1}]\n", "regions[0].max_gpus_per_worker"},
		{"token without tenant", region + "tokens: [{sha256: 2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90}]\n", "tokens[0].tenant"},
		{"token in clear", region + "tokens: [{tenant: a, sha256: hunter2}]\n", "tokens[0].sha256"},
		{"tls half", region + "tls: {cert: c.pem}\n", "tls"},
		{"sentinel without addrs", region + "redis_sentinel: {master: m}\n", "redis_sentinel"},
		{"negative log bytes", region + "worker: {log_bytes: -1}\n", "worker.log_bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tc.text)
			require.Error(t, err)
			var ge *greenq.Error
			require.ErrorAs(t, err, &ge)
			require.Equal(t, greenq.CodeInvalidArgument, ge.Code)
			require.Equal(t, tc.field, ge.Field, "error: %v", err)
		})
	}
}

func FuzzParse(f *testing.F) {
	f.Add(good)
	f.Add("regions: [{name: a, zone: SE}]\nslot: 1s\n")
	f.Fuzz(func(t *testing.T, text string) {
		c, err := Parse(strings.NewReader(text))
		if err != nil {
			return
		}
		c.setDefaults()
		_ = c.Validate() // must not panic
	})
}

func TestTokensFromEnv(t *testing.T) {
	t.Setenv("GREENQ_TOKENS", "alice:2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90, ops:2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90:admin")
	c, err := Load("")
	require.NoError(t, err)
	require.Equal(t, []Token{
		{Tenant: "alice", SHA256: "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"},
		{Tenant: "ops", SHA256: "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90", Admin: true},
	}, c.Tokens)
	t.Setenv("GREENQ_TOKENS", "bob")
	c, err = Load("")
	require.NoError(t, err)
	c.Regions = []greenq.Region{{Name: "a", Zone: "SE", Provider: "file", PUE: 1}}
	var ge *greenq.Error
	require.ErrorAs(t, c.Validate(), &ge)
	require.Equal(t, "tokens[0].sha256", ge.Field)
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := Load(t.TempDir() + "/absent.yaml")
	var ge *greenq.Error
	require.ErrorAs(t, err, &ge)
	require.Equal(t, "config", ge.Field)
	require.Equal(t, 2, greenq.ExitCode(ge.Code))
}

func TestENTSOEProvider(t *testing.T) {
	c, err := load(t, "regions: [{name: eu-central, zone: DE-LU, provider: entsoe}]\nproviders: {entsoe: {token: from-file}}\n")
	require.NoError(t, err)
	require.Equal(t, "entsoe", c.Regions[0].Provider)
	require.Equal(t, "from-file", c.Providers.ENTSOE.Token)
	t.Setenv("GREENQ_ENTSOE_TOKEN", "from-env")
	c, err = Load("")
	require.NoError(t, err)
	require.Equal(t, "from-env", c.Providers.ENTSOE.Token)
}
