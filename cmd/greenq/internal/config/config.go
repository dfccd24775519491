package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/forecast/zones"
)

// DefaultRedisURL is used when no Redis is named anywhere.
const DefaultRedisURL = "redis://127.0.0.1:6379/0"

// Config is the whole of greenq.yaml. Every key is optional but regions.
type Config struct {
	// Redis is a redis:// or rediss:// URL. Default redis://127.0.0.1:6379/0.
	Redis string `yaml:"redis"`
	// RedisCluster lists Redis Cluster seed addresses (host:port); when set
	// it replaces Redis.
	RedisCluster []string `yaml:"redis_cluster"`
	// RedisSentinel names a Sentinel-managed master; when set it replaces Redis.
	RedisSentinel *Sentinel `yaml:"redis_sentinel"`
	// Listen is the API address. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// TLS serves the API over HTTPS when both files are given.
	TLS TLS `yaml:"tls"`
	// Slot is the planning granularity, 1s or more. Default 15m.
	Slot Duration `yaml:"slot"`
	// Replan is a robfig/cron spec for periodic re-planning. Default "@every 5m".
	Replan string `yaml:"replan"`
	// Refresh is a robfig/cron spec for forecast refresh. Default "@every 15m".
	Refresh   string          `yaml:"refresh"`
	Objective Objective       `yaml:"objective"`
	Planner   Planner         `yaml:"planner"`
	Regions   []greenq.Region `yaml:"regions"`
	Providers Providers       `yaml:"providers"`
	Tokens    []Token         `yaml:"tokens"`
	Worker    Worker          `yaml:"worker"`
	// API tunes the HTTP API's per-token limits and allowed origins.
	API API `yaml:"api"`
}

// API tunes the HTTP API's per-token request limits and browser access.
type API struct {
	// RatePerSecond is each token's sustained request rate on /v1 (429
	// beyond). Default 20; negative disables rate limiting (benchmarks, or
	// a proxy in front that limits).
	RatePerSecond float64 `yaml:"rate_per_second"`
	// Burst is each token's burst on top of RatePerSecond. Default 40.
	Burst int `yaml:"burst"`
	// AllowedOrigins lists web origins (scheme://host[:port]) besides the
	// server's own whose pages may call the API from a browser, e.g. a
	// JupyterHub's. Default none: every other origin is refused.
	AllowedOrigins []string `yaml:"allowed_origins"`
}

// Sentinel locates a master through Redis Sentinel.
type Sentinel struct {
	Master   string   `yaml:"master"`
	Addrs    []string `yaml:"addrs"`
	Password string   `yaml:"password"`
}

// TLS names the API's certificate and key files.
type TLS struct {
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
}

// Objective says how money and carbon trade off.
type Objective struct {
	// CarbonPriceUSDPerTonne, when > 0, makes the planner minimise
	// cost + price × tCO2e. Default 0: least emissions, cost breaks ties.
	CarbonPriceUSDPerTonne float64 `yaml:"carbon_price_usd_per_tonne"`
}

// Planner tunes the planner beyond the slot.
type Planner struct {
	// SafetyMargin before each deadline. Default: the planner's own rule.
	SafetyMargin Duration `yaml:"safety_margin"`
	// MinSegment is the shortest run segment of an interruptible job. Default 4 slots.
	MinSegment Duration `yaml:"min_segment"`
	// Hysteresis is the fractional gain needed to move a planned job. Default 0.05.
	Hysteresis float64 `yaml:"hysteresis"`
}

// Providers configures the forecast sources.
type Providers struct {
	File            FileProvider    `yaml:"file"`
	UKCI            BaseURLProvider `yaml:"ukci"`
	WattTime        WattTime        `yaml:"watttime"`
	ElectricityMaps ElectricityMaps `yaml:"electricitymaps"`
	ENTSOE          ENTSOE          `yaml:"entsoe"`
	CarbonAware     BaseURLProvider `yaml:"carbonaware"`
}

// FileProvider reads <zone>.csv files.
type FileProvider struct {
	// Dir holds <zone>.csv with time_utc,gco2_per_kwh. Default ./data/carbon.
	Dir string `yaml:"dir"`
	// Replay shifts history by whole weeks onto today's dates (demo regions).
	Replay bool `yaml:"replay"`
}

// BaseURLProvider is a provider that needs only a base URL.
type BaseURLProvider struct {
	BaseURL string `yaml:"base_url"`
}

// WattTime holds WattTime credentials. Password may come from
// GREENQ_WATTTIME_PASSWORD.
type WattTime struct {
	BaseURL  string `yaml:"base_url"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// ElectricityMaps holds the Electricity Maps token. Token may come from
// GREENQ_ELECTRICITYMAPS_TOKEN.
type ElectricityMaps struct {
	BaseURL string `yaml:"base_url"`
	Token   string `yaml:"token"`
}

// ENTSOE holds the ENTSO-E Transparency Platform security token. Token may
// come from GREENQ_ENTSOE_TOKEN.
type ENTSOE struct {
	BaseURL string `yaml:"base_url"`
	Token   string `yaml:"token"`
}

// Token is an API token, stored only as the hex SHA-256 of its secret.
type Token struct {
	Tenant string `yaml:"tenant"`
	SHA256 string `yaml:"sha256"`
	Admin  bool   `yaml:"admin"`
}

// Worker holds defaults for workers.
type Worker struct {
	// PowerW is the per-GPU draw used when NVML is unavailable. Default 300.
	PowerW float64 `yaml:"power_w"`
	// EmbodiedGCO2PerGPUHour is SCI's M per GPU-hour. Default: the worker's.
	EmbodiedGCO2PerGPUHour float64 `yaml:"embodied_gco2_per_gpu_hour"`
	// LogBytes bounds what is kept of each job's output: beyond it, the
	// first and the latest halves with the bytes cut between them counted.
	// Default 1048576 (queue.DefaultLogBytes).
	LogBytes int `yaml:"log_bytes"`
	// PassEnv lists the worker's variables jobs also see besides the
	// minimal base (PATH, HOME, LANG, TZ, USER); --pass-env replaces it.
	// Default none.
	PassEnv []string `yaml:"pass_env"`
}

// Duration is a time.Duration written as a Go duration string in YAML.
type Duration time.Duration

// UnmarshalYAML reads "15m", "1s", ….
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a Go duration such as 15m", s)
	}
	*d = Duration(v)
	return nil
}

// Providers known to greenq.
var knownProviders = []string{"file", "ukci", "watttime", "electricitymaps", "carbonaware", "entsoe"}

var regionName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// Load reads the file at path (when non-empty), applies environment
// overrides and defaults, and validates. A missing path is an error; an
// empty path yields the defaults with no regions (Validate then fails for
// server commands, which need regions).
func Load(path string) (Config, error) {
	var c Config
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return c, greenq.Invalid("config", "cannot read %s: %v", path, errors.Unwrap(err))
		}
		defer f.Close()
		if c, err = Parse(f); err != nil {
			return c, fmt.Errorf("config %s: %w", path, err)
		}
	}
	c.applyEnv()
	c.setDefaults()
	return c, nil
}

// Parse decodes YAML strictly: unknown keys are errors.
func Parse(r io.Reader) (Config, error) {
	var c Config
	data, err := io.ReadAll(io.LimitReader(r, 4<<20))
	if err != nil {
		return c, fmt.Errorf("read: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return c, greenq.Invalid("config", "%v", err)
	}
	return c, nil
}

// applyEnv reads secrets that deployments keep out of the config file:
// GREENQ_TOKENS (tenant:sha256[:admin],…), GREENQ_WATTTIME_PASSWORD,
// GREENQ_ELECTRICITYMAPS_TOKEN and GREENQ_ENTSOE_TOKEN.
func (c *Config) applyEnv() {
	if v := os.Getenv("GREENQ_TOKENS"); v != "" {
		c.Tokens = append(c.Tokens, parseTokens(v)...)
	}
	if v := os.Getenv("GREENQ_WATTTIME_PASSWORD"); v != "" {
		c.Providers.WattTime.Password = v
	}
	if v := os.Getenv("GREENQ_ELECTRICITYMAPS_TOKEN"); v != "" {
		c.Providers.ElectricityMaps.Token = v
	}
	if v := os.Getenv("GREENQ_ENTSOE_TOKEN"); v != "" {
		c.Providers.ENTSOE.Token = v
	}
}

func (c *Config) setDefaults() {
	if c.Redis == "" {
		c.Redis = DefaultRedisURL
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.Slot == 0 {
		c.Slot = Duration(15 * time.Minute)
	}
	if c.Replan == "" {
		c.Replan = "@every 5m"
	}
	if c.Refresh == "" {
		c.Refresh = "@every 15m"
	}
	if c.Providers.File.Dir == "" {
		c.Providers.File.Dir = "./data/carbon"
	}
	for i := range c.Regions {
		r := &c.Regions[i]
		if r.Provider == "" {
			r.Provider = "file"
		}
		if r.PUE == 0 {
			r.PUE = 1
		}
		if r.EmbodiedGCO2PerGPUHour == 0 {
			// The server shares each region's factor with the workers.
			r.EmbodiedGCO2PerGPUHour = c.Worker.EmbodiedGCO2PerGPUHour
		}
		// A cloud region's name says where it draws power: fill the zone
		// from the built-in table unless the config names one.
		if r.Zone == "" {
			if z, ok := zones.Lookup(r.Name); ok {
				r.Zone, _ = z.For(r.Provider)
			}
		}
	}
}

// Validate checks the whole configuration, naming the first bad key.
func (c Config) Validate() error {
	if len(c.Regions) == 0 {
		return greenq.Invalid("regions", "at least one region is required (name, zone, provider)")
	}
	if c.Slot < Duration(time.Second) {
		return greenq.Invalid("slot", "must be at least 1s, got %s", time.Duration(c.Slot))
	}
	parser := cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	if _, err := parser.Parse(c.Replan); err != nil {
		return greenq.Invalid("replan", "%q is not a cron spec (e.g. \"@every 5m\" or \"*/5 * * * *\"): %v", c.Replan, err)
	}
	if _, err := parser.Parse(c.Refresh); err != nil {
		return greenq.Invalid("refresh", "%q is not a cron spec (e.g. \"@every 15m\"): %v", c.Refresh, err)
	}
	if p := c.Objective.CarbonPriceUSDPerTonne; p < 0 || math.IsNaN(p) || math.IsInf(p, 0) {
		return greenq.Invalid("objective.carbon_price_usd_per_tonne", "must be a finite number ≥ 0")
	}
	if h := c.Planner.Hysteresis; h < 0 || h >= 1 || math.IsNaN(h) {
		return greenq.Invalid("planner.hysteresis", "must be in [0, 1)")
	}
	seen := map[string]bool{}
	for i, r := range c.Regions {
		f := fmt.Sprintf("regions[%d]", i)
		if !regionName.MatchString(r.Name) {
			return greenq.Invalid(f+".name", "%q must be 1–63 lower-case letters, digits or '-'", r.Name)
		}
		if seen[r.Name] {
			return greenq.Invalid(f+".name", "%q appears twice", r.Name)
		}
		seen[r.Name] = true
		if r.Zone == "" {
			return greenq.Invalid(f+".zone", "is required for %q, which is not a cloud region greenq knows (name an AWS, GCP or Azure region, or give the grid zone the provider knows, e.g. GB)", r.Name)
		}
		known := false
		for _, p := range knownProviders {
			known = known || r.Provider == p
		}
		if !known {
			return greenq.Invalid(f+".provider", "%q is not one of %s", r.Provider, strings.Join(knownProviders, ", "))
		}
		if r.PUE < 1 || r.PUE > 5 || math.IsNaN(r.PUE) {
			return greenq.Invalid(f+".pue", "must be between 1 and 5, got %v", r.PUE)
		}
		if p := r.GPUPriceUSDPerHour; p < 0 || math.IsNaN(p) || math.IsInf(p, 0) {
			return greenq.Invalid(f+".gpu_price_usd_per_hour", "must be a finite number ≥ 0")
		}
		if e := r.EmbodiedGCO2PerGPUHour; math.IsNaN(e) || math.IsInf(e, 0) {
			return greenq.Invalid(f+".embodied_gco2_per_gpu_hour", "must be a finite number (negative: none)")
		}
		if m := r.MaxGPUsPerWorker; m < 0 || m > greenq.MaxGPUs {
			return greenq.Invalid(f+".max_gpus_per_worker", "must be between 1 and %d (the most GPUs one worker or cluster node of %q offers; omit when unknown), got %d", greenq.MaxGPUs, r.Name, m)
		}
		for k, s := range r.PriceSchedule {
			if s.FromHour < 0 || s.FromHour > 23 || s.ToHour < 0 || s.ToHour > 24 || s.USDPerGPUHour < 0 {
				return greenq.Invalid(fmt.Sprintf("%s.price_schedule[%d]", f, k), "hours must be 0–24 and the price ≥ 0")
			}
		}
	}
	for i, t := range c.Tokens {
		f := fmt.Sprintf("tokens[%d]", i)
		if t.Tenant == "" {
			return greenq.Invalid(f+".tenant", "is required")
		}
		if len(t.SHA256) != 64 || strings.Trim(strings.ToLower(t.SHA256), "0123456789abcdef") != "" {
			return greenq.Invalid(f+".sha256", "must be the 64 hex digits of the token's SHA-256 (echo -n TOKEN | sha256sum)")
		}
	}
	if c.Worker.LogBytes < 0 || c.Worker.LogBytes == 1 {
		return greenq.Invalid("worker.log_bytes", "must be at least 2 (bytes of each job's output kept; default 1048576), got %d", c.Worker.LogBytes)
	}
	if (c.TLS.Cert == "") != (c.TLS.Key == "") {
		return greenq.Invalid("tls", "cert and key must be given together")
	}
	if s := c.RedisSentinel; s != nil && (s.Master == "" || len(s.Addrs) == 0) {
		return greenq.Invalid("redis_sentinel", "needs master and at least one address")
	}
	return nil
}

// RegionNames returns the configured region names in order.
func (c Config) RegionNames() []string {
	out := make([]string, len(c.Regions))
	for i, r := range c.Regions {
		out[i] = r.Name
	}
	return out
}

// parseTokens reads tenant:sha256[:admin] entries separated by commas.
// Malformed entries are kept as they are so Validate names them.
func parseTokens(v string) []Token {
	var out []Token
	for _, e := range strings.Split(v, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		parts := strings.Split(e, ":")
		t := Token{Tenant: parts[0]}
		if len(parts) > 1 {
			t.SHA256 = parts[1]
		}
		t.Admin = len(parts) > 2 && parts[2] == "admin"
		out = append(out, t)
	}
	return out
}
