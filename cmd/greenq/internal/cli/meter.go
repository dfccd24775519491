package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/greenq/greenq/worker"
	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/process"
)

// meterSignals are passed on to the command's process group.
var meterSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

func newMeter(g *globals) *cobra.Command {
	var (
		out      string
		gpuList  string
		interval time.Duration
		powerW   float64
	)
	cmd := &cobra.Command{
		Use:   "meter [--out FILE] -- CMD ARGS…",
		Short: "Run a command where a job really runs and measure its energy",
		Long: `Run CMD and measure the energy it used, where it runs: on a Slurm node or
in a pod, where the worker cannot. GPUs are metered with NVML (the energy
counter, else power samples, else an estimate) and the CPU and memory with
RAPL (else an estimate), by the worker's own metering code. The GPUs are
--gpus, else Slurm's SLURM_STEP_GPUS or SLURM_JOB_GPUS (the node's
indices, as NVML numbers them), else CUDA_VISIBLE_DEVICES.

SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 are passed on to the
command's process group. When CMD ends, the reading is written as JSON to
--out (standard error without it) and meter exits with CMD's exit status
(128+N when a signal N killed it). With GREENQ_JOB_TOKEN, GREENQ_API_URL
and GREENQ_JOB_ID set (a worker sets them for each run of a job a cluster
runs), the reading is also posted to the API, to POST
/v1/jobs/{id}/energy with the job's token. The environment is passed on
unchanged, less GREENQ_JOB_TOKEN.`,
		Example:               "  greenq meter --out /shared/run/reading.json -- python train.py",
		DisableFlagsInUseLine: true,
		Args:                  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			gpus, err := meterGPUs(gpuList, g.getenv)
			if err != nil {
				return err
			}
			if interval <= 0 {
				return usagef("--interval: must be positive, got %s", interval)
			}
			if powerW <= 0 {
				return usagef("--power-w: must be positive, got %g", powerW)
			}
			d := worker.Config{}.WithDefaults()
			gm, _ := worker.OpenGPUMeter(worker.MeterOptions{SampleInterval: interval})
			defer gm.Close()
			m := &meterRun{gpu: gm, cpu: &worker.CPUMeter{CPUPowerW: d.CPUPowerW, RAMPowerW: d.RAMPowerW, SampleInterval: interval},
				gpus: gpus, powerW: powerW, out: out, stderr: g.stderr, post: newMeterPost(g.getenv)}
			code := m.run(args)
			if code == 0 {
				return nil
			}
			return exitError{code: code}
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // everything after CMD is CMD's
	f.StringVar(&out, "out", "", "write the reading (JSON) to this file; default standard error")
	f.StringVar(&gpuList, "gpus", "", "GPU indices to meter, as NVML numbers them (default from SLURM_STEP_GPUS, SLURM_JOB_GPUS or CUDA_VISIBLE_DEVICES)")
	f.DurationVar(&interval, "interval", time.Second, "how often power, utilisation and RAPL counters are sampled")
	f.Float64Var(&powerW, "power-w", worker.Config{}.WithDefaults().DefaultPowerW, "draw per GPU assumed where NVML cannot measure")
	return cmd
}

// meterGPUs returns the GPUs to meter: list, else the first of Slurm's
// lists and CUDA_VISIBLE_DEVICES that is set.
func meterGPUs(list string, getenv func(string) string) ([]int, error) {
	from := "--gpus"
	if list == "" {
		for _, n := range []string{"SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "CUDA_VISIBLE_DEVICES"} {
			if v := strings.TrimSpace(getenv(n)); v != "" {
				list, from = v, n
				break
			}
		}
	}
	if list == "" || list == "NoDevFiles" {
		return nil, nil
	}
	var gpus []int
	for _, s := range strings.Split(list, ",") {
		i, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || i < 0 {
			if from == "--gpus" {
				return nil, usagef("--gpus: %q is not a list of GPU indices such as 0,1", list)
			}
			// UUIDs or MIG names: counted, and estimated.
			gpus = append(gpus, -1)
			continue
		}
		gpus = append(gpus, i)
	}
	return gpus, nil
}

// meterRun is one `greenq meter` run.
type meterRun struct {
	gpu    worker.EnergyMeter
	cpu    *worker.CPUMeter
	gpus   []int
	powerW float64
	out    string
	stderr io.Writer
	// stdin, stdout and stderr of the command; default meter's own.
	cmdIn            io.Reader
	cmdOut, cmdErr   io.Writer
	notify, stopNote func(chan<- os.Signal) // signal.Notify/Stop; tests stub them
	// post sends the reading to the API too; nil: file (or stderr) only.
	post *meterPost
	// env is the command's environment; default meter's own, less
	// GREENQ_JOB_TOKEN.
	env []string
}

// run runs argv, meters it and writes the reading; it returns the exit
// status meter must exit with.
func (m *meterRun) run(argv []string) int {
	mt := worker.StartMetering(m.gpu, m.cpu, m.gpus, m.powerW)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = orReader(m.cmdIn, os.Stdin), orWriter(m.cmdOut, os.Stdout), orWriter(m.cmdErr, os.Stderr)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Env = withoutToken(m.env)
	sigs := make(chan os.Signal, 8)
	notify, stop := m.notify, m.stopNote
	if notify == nil {
		notify = func(c chan<- os.Signal) { signal.Notify(c, meterSignals...) }
		stop = func(c chan<- os.Signal) { signal.Stop(c) }
	}
	notify(sigs) // before the start, so no signal is missed
	defer stop(sigs)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(m.stderr, "greenq meter: %v\n", err)
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		m.write(mt.StopReading(0, code))
		return code
	}
	pgid := cmd.Process.Pid
	waited := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		// The signals main's context also catches arrive here too: they are
		// passed on from here only, once each.
		defer close(forwarded)
		for {
			select {
			case s := <-sigs:
				if sig, ok := s.(syscall.Signal); ok {
					_ = syscall.Kill(-pgid, sig)
				}
			case <-waited:
				return
			}
		}
	}()
	_ = cmd.Wait()
	close(waited)
	<-forwarded
	// As the process executor: nothing the command started outlives it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	code := process.ExitCode(cmd.ProcessState)
	var cpu time.Duration
	if ps := cmd.ProcessState; ps != nil {
		cpu = ps.UserTime() + ps.SystemTime()
	}
	m.write(mt.StopReading(cpu, code))
	return code
}

// write writes r to m.out (atomically: a reader sees all of it or no
// file), or to standard error without one.
func (m *meterRun) write(r executor.Reading) {
	r.Host, _ = os.Hostname()
	b, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintf(m.stderr, "greenq meter: encode reading: %v\n", err)
		return
	}
	if m.post != nil {
		if err := m.post.send(b); err != nil {
			fmt.Fprintf(m.stderr, "greenq meter: post the reading: %v\n", err)
		}
	}
	if m.out == "" {
		fmt.Fprintf(m.stderr, "greenq meter: %s\n", b)
		return
	}
	tmp := filepath.Join(filepath.Dir(m.out), "."+filepath.Base(m.out)+".tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintf(m.stderr, "greenq meter: write reading: %v\n", err)
		return
	}
	if err := os.Rename(tmp, m.out); err != nil {
		fmt.Fprintf(m.stderr, "greenq meter: write reading: %v\n", err)
	}
}

func orReader(r, def io.Reader) io.Reader {
	if r != nil {
		return r
	}
	return def
}

func orWriter(w, def io.Writer) io.Writer {
	if w != nil {
		return w
	}
	return def
}

// withoutToken is env (default os.Environ()) less the job token: the
// command itself has no use for it, and must not post its own reading.
func withoutToken(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, worker.EnvJobToken+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// meterPost posts a reading to POST /v1/jobs/{id}/energy with the job's
// token.
type meterPost struct {
	url, token string
	client     *http.Client
	backoff    time.Duration
}

// newMeterPost is the poster the worker's variables configure; nil unless
// the token, the API's URL and the job id are all set.
func newMeterPost(getenv func(string) string) *meterPost {
	tok, api, id := getenv(worker.EnvJobToken), getenv(worker.EnvAPIURL), getenv(worker.EnvJobID)
	if tok == "" || api == "" || id == "" {
		return nil
	}
	return &meterPost{url: strings.TrimRight(api, "/") + "/v1/jobs/" + url.PathEscape(id) + "/energy", token: tok,
		client: &http.Client{Timeout: 20 * time.Second}, backoff: time.Second}
}

// meterPostAttempts bounds send's tries on network errors and 5xx or 429
// answers; a refusal (another 4xx) is final.
const meterPostAttempts = 4

// send posts body, retrying what may pass later.
func (p *meterPost) send(body []byte) error {
	var err error
	for attempt := range meterPostAttempts {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * p.backoff)
		}
		var final bool
		if final, err = p.once(body); err == nil || final {
			return err
		}
	}
	return err
}

func (p *meterPost) once(body []byte) (final bool, err error) {
	req, err := http.NewRequest(http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return true, fmt.Errorf("%s: %w", p.url, err)
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 == 2 {
		return true, nil
	}
	final = resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusTooManyRequests
	return final, fmt.Errorf("%s: %s: %s", p.url, resp.Status, bytes.TrimSpace(msg))
}
