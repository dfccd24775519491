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
	"unicode/utf8"

	"github.com/spf13/cobra"

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

	stdout, stderr io.Writer
	getenv         func(string) string
}

// Main runs the command line with args and returns the process exit status:
// 0 success, 1 failure, 2 bad usage or refused input.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	g := &globals{stdout: stdout, stderr: stderr, getenv: os.Getenv}
	root := newRoot(g)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
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
	pf := root.PersistentFlags()
	pf.StringVar(&g.configPath, "config", "", "config file (env GREENQ_CONFIG)")
	pf.StringVar(&g.redisURL, "redis", "", "Redis URL (env GREENQ_REDIS_URL; default "+config.DefaultRedisURL+")")
	pf.StringSliceVar(&g.redisCluster, "redis-cluster", nil, "Redis Cluster seed addresses host:port,… (env GREENQ_REDIS_CLUSTER)")
	pf.StringVar(&g.sentinelMaster, "redis-sentinel-master", "", "Redis Sentinel master name")
	pf.StringSliceVar(&g.sentinelAddrs, "redis-sentinel-addrs", nil, "Redis Sentinel addresses host:port,…")
	pf.StringVar(&g.apiURL, "api", "", "API URL for client commands (env GREENQ_API_URL; default http://127.0.0.1:8080)")
	pf.StringVar(&g.logFormat, "log-format", "text", "log format: text or json")
	pf.StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error { return g.checkArgs(cmd, args) }

	root.AddCommand(
		newSubmit(g), newStatus(g), newList(g), newCancel(g), newLogs(g), newOutputs(g),
		newPlan(g), newForecast(g), newRegions(g), newReport(g),
		newSimulate(g), newServer(g), newWorker(g), newDev(g),
	)
	return root
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
		if len(args) == 1 {
			return checkJobID(args[0])
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
