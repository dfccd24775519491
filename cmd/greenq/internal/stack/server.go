package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/greenq/greenq/api"
	"github.com/greenq/greenq/cmd/greenq/internal/config"
	"github.com/greenq/greenq/forecast"
	"github.com/greenq/greenq/forecast/carbonaware"
	"github.com/greenq/greenq/forecast/electricitymaps"
	"github.com/greenq/greenq/forecast/entsoe"
	"github.com/greenq/greenq/forecast/file"
	"github.com/greenq/greenq/forecast/refresh"
	"github.com/greenq/greenq/forecast/ukci"
	"github.com/greenq/greenq/forecast/watttime"
	"github.com/greenq/greenq/policy"
	"github.com/greenq/greenq/queue"
	"github.com/greenq/greenq/worker"
)

// Server is greenq's server process: the API on every replica; the
// planner, release loop and forecast refresh on the one replica holding the
// leader lease.
type Server struct {
	Config config.Config
	Logger *slog.Logger
	// Registry collects the process's metrics for /metrics. Default: a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Gatherers are extra metric sources served on /metrics (dev's workers).
	Gatherers prometheus.Gatherers
	// Listener, when set, replaces listening on Config.Listen (tests use port 0).
	Listener net.Listener
	// Ready, when set, receives the API's address once it accepts requests.
	Ready func(addr string)
	// Now is the clock. Default time.Now.
	Now func() time.Time

	rdb  redis.UniversalClient
	aopt asynq.RedisConnOpt
}

// PolicyConfig maps the file's planner settings onto package policy's.
func PolicyConfig(c config.Config) policy.Config {
	return policy.Config{
		Slot:                   time.Duration(c.Slot),
		SafetyMargin:           time.Duration(c.Planner.SafetyMargin),
		MinSegment:             time.Duration(c.Planner.MinSegment),
		CarbonPriceUSDPerTonne: c.Objective.CarbonPriceUSDPerTonne,
		Hysteresis:             c.Planner.Hysteresis,
	}
}

// Providers builds the forecast adapters the configured regions name.
func Providers(c config.Config, now func() time.Time) (map[string]forecast.Provider, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	out := map[string]forecast.Provider{}
	for _, r := range c.Regions {
		if _, ok := out[r.Provider]; ok {
			continue
		}
		var (
			p   forecast.Provider
			err error
		)
		switch r.Provider {
		case "file":
			p, err = file.New(file.Config{Dir: c.Providers.File.Dir, Replay: c.Providers.File.Replay, Now: now})
		case "ukci":
			p, err = ukci.New(ukci.Config{BaseURL: c.Providers.UKCI.BaseURL, Now: now}, hc)
		case "watttime":
			w := c.Providers.WattTime
			p, err = watttime.New(watttime.Config{BaseURL: w.BaseURL, Username: w.Username, Password: w.Password, Now: now}, hc)
		case "electricitymaps":
			e := c.Providers.ElectricityMaps
			p, err = electricitymaps.New(electricitymaps.Config{BaseURL: e.BaseURL, APIKey: e.Token, Now: now}, hc)
		case "entsoe":
			e := c.Providers.ENTSOE
			p, err = entsoe.New(entsoe.Config{BaseURL: e.BaseURL, Token: e.Token, Now: now}, hc)
		case "carbonaware":
			p, err = carbonaware.New(carbonaware.Config{BaseURL: c.Providers.CarbonAware.BaseURL, Now: now}, hc)
		default:
			err = fmt.Errorf("provider %q is not known", r.Provider)
		}
		if err != nil {
			return nil, fmt.Errorf("configure provider %s: %w", r.Provider, err)
		}
		out[r.Provider] = p
	}
	return out, nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Run serves until ctx ends, then shuts the API down gracefully (in-flight
// requests finish) and gives up the lease.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Config.Validate(); err != nil {
		return err
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Registry == nil {
		s.Registry = newRegistry()
	}
	log := s.Logger
	if s.rdb == nil {
		rdb, aopt, err := Connect(s.Config)
		if err != nil {
			return err
		}
		defer rdb.Close()
		s.rdb, s.aopt = rdb, aopt
	}
	// The one planner configuration: the store's planning adapter plans
	// submits, the leader's rounds and explain with it.
	store, err := queue.NewStore(s.rdb, queue.Config{Regions: s.Config.Regions, Now: s.Now, Logger: log, Policy: PolicyConfig(s.Config)})
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	if err := store.PublishRegions(ctx); err != nil {
		// The leader's planner shares them again every round.
		log.Warn("share region facts with workers", "err", err)
	}
	planner, err := queue.NewPlanner(store, queue.PlannerConfig{Replan: s.Config.Replan, Now: s.Now, Logger: log})
	if err != nil {
		return err
	}
	releaser, err := queue.NewReleaser(store, queue.ReleaserConfig{RedisConnOpt: s.aopt, Now: s.Now, Logger: log, Registerer: s.Registry})
	if err != nil {
		return err
	}
	providers, err := Providers(s.Config, s.Now)
	if err != nil {
		return err
	}
	regions := make([]refresh.Region, len(s.Config.Regions))
	schedules := map[string]string{}
	for i, r := range s.Config.Regions {
		regions[i] = refresh.Region{Name: r.Name, Zone: r.Zone, Provider: r.Provider}
		schedules[r.Provider] = s.Config.Refresh
	}
	// Receipts written from forecasts are restated once a refresh brings
	// the actuals for their hours.
	restater, err := worker.NewRestater(worker.RestaterConfig{Store: store, Regions: s.Config.Regions, Now: s.Now, Logger: log})
	if err != nil {
		return err
	}
	refresher, err := refresh.New(refresh.Config{
		Regions: regions, Providers: providers, Schedules: schedules, Store: store,
		OnChange: func(string) { planner.Trigger(); restater.Trigger() }, Registerer: s.Registry, Logger: log, Now: s.Now,
	})
	if err != nil {
		return err
	}
	insp := asynq.NewInspector(s.aopt)
	defer insp.Close()
	if err := s.Registry.Register(queue.NewCollector(store, insp)); err != nil {
		return fmt.Errorf("register queue metrics: %w", err)
	}
	lease, err := queue.NewLease(s.rdb, queue.LeaseConfig{Logger: log})
	if err != nil {
		return err
	}
	tokens := make([]api.Token, len(s.Config.Tokens))
	for i, t := range s.Config.Tokens {
		tokens[i] = api.Token{Tenant: t.Tenant, SHA256: t.SHA256, Admin: t.Admin}
	}
	gather := append(prometheus.Gatherers{s.Registry}, s.Gatherers...)
	apiSrv, err := api.New(api.Config{Tokens: tokens, Logger: log, Gatherer: gather, Now: s.Now,
		RatePerSecond: s.Config.API.RatePerSecond, Burst: s.Config.API.Burst, AllowedOrigins: s.Config.API.AllowedOrigins}, store)
	if err != nil {
		return err
	}
	if apiSrv.Open() {
		log.Warn("no tokens configured: the API serves loopback clients only, as tenant \"local\"")
	}

	ln := s.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", s.Config.Listen); err != nil {
			return fmt.Errorf("listen on %s: %w", s.Config.Listen, err)
		}
	}
	httpSrv := &http.Server{Handler: apiSrv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() {
		var err error
		if s.Config.TLS.Cert != "" {
			err = httpSrv.ServeTLS(ln, s.Config.TLS.Cert, s.Config.TLS.Key)
		} else {
			err = httpSrv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
		close(serveErr)
	}()
	log.Info("API listening", "addr", ln.Addr().String(), "regions", s.Config.RegionNames())
	if s.Ready != nil {
		s.Ready(ln.Addr().String())
	}

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = lease.Run(ctx, func(lctx context.Context) {
			log.Info("leading: planning, releasing and refreshing forecasts")
			var lw sync.WaitGroup
			for name, run := range map[string]func(context.Context) error{
				"planner": planner.Run, "releaser": releaser.Run, "refresh": refresher.Run, "restate": restater.Run,
			} {
				lw.Add(1)
				go func() {
					defer lw.Done()
					if err := run(lctx); err != nil && lctx.Err() == nil {
						log.Error("leader loop stopped", "loop", name, "err", err)
					}
				}()
			}
			lw.Wait()
		})
	}()

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if err != nil {
			return fmt.Errorf("serve API: %w", err)
		}
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_ = httpSrv.Shutdown(shutdown)
	wg.Wait()
	return nil
}

// The store must serve both the API and the workers.
var (
	_ api.Store = (*queue.Store)(nil)
)
