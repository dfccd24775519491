package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/cmd/greenq/internal/config"
)

// globals are the flags every command takes. Flags beat environment beats
// the config file.
type globals struct {
	configPath     string
	redisURL       string
	redisCluster   []string
	sentinelMaster string
	sentinelAddrs  []string
	apiURL         string
	token          string
	output         string
	logFormat      string
	logLevel       string

	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// now and loc are the clock and the zone times are shown in (default
	// time.Now and time.Local); sleep waits out a 429's Retry-After
	// (default a timer). Tests set them.
	now   func() time.Time
	loc   *time.Location
	sleep func(ctx context.Context, d time.Duration) error
}

// Main runs the command line with args and returns the process exit status:
// 0 success, 1 failure, 2 bad usage or refused input.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return mainWith(ctx, args, &globals{stdin: os.Stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv})
}

// mainWith is Main for g (tests give their own clock, zone and sleep).
func mainWith(ctx context.Context, args []string, g *globals) int {
	if g.now == nil {
		g.now = time.Now
	}
	if g.loc == nil {
		g.loc = time.Local
	}
	if g.sleep == nil {
		g.sleep = sleepCtx
	}
	stderr := g.stderr
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(g.stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	var exit exitError
	if errors.As(err, &exit) {
		if exit.msg != "" {
			fmt.Fprintln(stderr, "greenq:", exit.msg)
		}
		return exit.code
	}
	err = asFlagError(cmd, err)
	fmt.Fprintln(stderr, "greenq:", err)
	var usage usageError
	if errors.As(err, &usage) {
		return 2
	}
	var ge *greenq.Error
	if errors.As(err, &ge) {
		return greenq.ExitCode(ge.Code)
	}
	if isCobraUsage(err) {
		return 2
	}
	return 1
}

// usageError marks bad usage (exit 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitError carries an explicit exit status (e.g. status --wait on a failed job).
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown flag", "unknown shorthand", "unknown command", "accepts ", "requires at least", "invalid argument", "flag needs an argument", "required flag"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func newRoot(g *globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "greenq",
		Short: "A batch job queue that runs ML work in low-carbon windows",
		Long: `greenq defers training runs, sweeps and batch inference to the region and
time window with the lowest grid carbon intensity that still meets each
job's deadline, runs them on GPU workers and leaves a carbon receipt.`,
		Example: `  greenq dev                                   # the whole stack, with demo regions
  greenq submit --deadline 24h --duration 3h -- python train.py
  greenq status JOB_ID --wait
  greenq plan`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "", "config file (env GREENQ_CONFIG)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error { return g.checkArgs(cmd, args) }

	client := []*cobra.Command{
		newSubmit(g), newStatus(g), newList(g), newCancel(g), newLogs(g), newOutputs(g),
		newPlan(g), newForecast(g), newRegions(g), newReport(g),
	}
	servers := []*cobra.Command{newServer(g), newWorker(g), newDev(g)}
	simulate := newSimulate(g)
	// Each command lists the flags it uses: client commands --api, the
	// server, worker and dev the Redis and log flags. The others still
	// accept them (hidden), so a script that passes one everywhere works.
	for _, c := range client {
		g.apiFlags(c.Flags(), false)
		g.serverFlags(c.Flags(), true)
	}
	for _, c := range servers {
		g.apiFlags(c.Flags(), true)
		g.serverFlags(c.Flags(), false)
	}
	g.apiFlags(simulate.Flags(), true)
	g.serverFlags(simulate.Flags(), true)
	root.AddCommand(client...)
	root.AddCommand(simulate)
	root.AddCommand(servers...)
	root.AddCommand(newMeter(g))
	return root
}

// apiFlags adds --api, hidden where the command does not use it.
func (g *globals) apiFlags(f *pflag.FlagSet, hidden bool) {
	f.StringVar(&g.apiURL, "api", "", "API URL (env GREENQ_API_URL; default http://127.0.0.1:8080); the bearer token is read from GREENQ_TOKEN")
	if hidden {
		_ = f.MarkHidden("api")
	}
}

// serverFlags adds the Redis and log flags, hidden where the command does
// not use them.
func (g *globals) serverFlags(f *pflag.FlagSet, hidden bool) {
	f.StringVar(&g.redisURL, "redis", "", "Redis URL (env GREENQ_REDIS_URL; default "+config.DefaultRedisURL+")")
	f.StringSliceVar(&g.redisCluster, "redis-cluster", nil, "Redis Cluster seed addresses host:port,… (env GREENQ_REDIS_CLUSTER)")
	f.StringVar(&g.sentinelMaster, "redis-sentinel-master", "", "Redis Sentinel master name")
	f.StringSliceVar(&g.sentinelAddrs, "redis-sentinel-addrs", nil, "Redis Sentinel addresses host:port,…")
	f.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	f.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if hidden {
		for _, name := range []string{"redis", "redis-cluster", "redis-sentinel-master", "redis-sentinel-addrs", "log-format", "log-level"} {
			_ = f.MarkHidden(name)
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// checkArgs refuses, before any request, usage the API would refuse or
// misread: an --api that is not an http(s) URL; an empty --regions (sent as
// no list, it would mean every region) or one with an empty entry; and a
// job ID that is not one (".." would change the request's path).
func (g *globals) checkArgs(cmd *cobra.Command, args []string) error {
	if g.apiURL != "" {
		if u, err := url.Parse(g.apiURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return usagef("--api: %q is not an http(s) URL such as http://127.0.0.1:8080", g.apiURL)
		}
	}
	if f := cmd.Flags().Lookup("regions"); f != nil && f.Changed {
		regions, _ := cmd.Flags().GetStringSlice("regions")
		if len(regions) == 0 {
			return usagef("--regions: is empty; leave the flag out to allow every region")
		}
		for _, r := range regions {
			if strings.TrimSpace(r) == "" {
				return usagef("--regions: has an empty entry")
			}
		}
	}
	switch cmd.Name() {
	case "status", "cancel", "logs", "outputs":
		for _, id := range args {
			if err := checkJobID(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkJobID refuses what the API's jobID refuses, and the dot segments
// that would move the request to another path.
func checkJobID(id string) error {
	if id == "" || id == "." || id == ".." || len(id) > 128 || !utf8.ValidString(id) || strings.ContainsAny(id, "\x00/") {
		return usagef("ID: %q is not a job id", id)
	}
	return nil
}

// outputFlag adds -o json|table to a read command.
func outputFlag(cmd *cobra.Command, g *globals) {
	cmd.Flags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
}

func (g *globals) checkOutput() error {
	if g.output != "table" && g.output != "json" {
		return usagef("-o: %q is not one of table, json", g.output)
	}
	return nil
}

func (g *globals) env(name, flag string) string {
	if flag != "" {
		return flag
	}
	return g.getenv(name)
}

// loadConfig resolves the config file and applies flag/env overrides for
// Redis.
func (g *globals) loadConfig() (config.Config, error) {
	cfg, err := config.Load(g.env("GREENQ_CONFIG", g.configPath))
	if err != nil {
		return cfg, err
	}
	if u := g.env("GREENQ_REDIS_URL", g.redisURL); u != "" {
		cfg.Redis = u
	}
	if len(g.redisCluster) > 0 {
		cfg.RedisCluster = g.redisCluster
	} else if v := g.getenv("GREENQ_REDIS_CLUSTER"); v != "" {
		cfg.RedisCluster = strings.Split(v, ",")
	}
	if g.sentinelMaster != "" {
		cfg.RedisSentinel = &config.Sentinel{Master: g.sentinelMaster, Addrs: g.sentinelAddrs}
	}
	return cfg, nil
}

func (g *globals) logger(component string) *slog.Logger {
	level := slog.LevelInfo
	_ = level.UnmarshalText([]byte(g.logLevel))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(g.stderr, opts)
	if g.logFormat == "json" {
		h = slog.NewJSONHandler(g.stderr, opts)
	}
	return slog.New(h).With("component", component)
}
