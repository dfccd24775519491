package slurm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
	"github.com/greenq/greenq/worker/executor"
)

func TestTimeLimit(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name             string
		deadline         time.Time
		estimate, margin time.Duration
		maxTime          time.Duration
		want             time.Duration
		wantErr          string
	}{
		{name: "nothing known: no limit"},
		{name: "estimate and the default margin", estimate: 2 * time.Hour, want: 4 * time.Hour},
		{name: "short estimate: at least 30 minutes more", estimate: 5 * time.Minute, want: 35 * time.Minute},
		{name: "a margin of the operator's", estimate: time.Hour, margin: 10 * time.Minute, want: 70 * time.Minute},
		{name: "the deadline comes first", deadline: now.Add(90*time.Minute + 59*time.Second), estimate: time.Hour, want: 90 * time.Minute},
		{name: "deadline only", deadline: now.Add(3 * time.Hour), want: 3 * time.Hour},
		{name: "the partition's MaxTime", estimate: 10 * time.Hour, maxTime: 8 * time.Hour, want: 8 * time.Hour},
		{name: "MaxTime without an estimate", maxTime: 8 * time.Hour, want: 8 * time.Hour},
		{name: "rounded down, never up", deadline: now.Add(61 * time.Second), want: time.Minute},
		{name: "a deadline too close for minutes", deadline: now.Add(59 * time.Second), wantErr: "less than Slurm's smallest"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := timeLimit(now, tc.deadline, tc.estimate, tc.margin, tc.maxTime)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			if !tc.deadline.IsZero() {
				require.False(t, now.Add(got).After(tc.deadline), "past the deadline")
			}
		})
	}
	require.Equal(t, "0-01:30:00", formatMinutes(90*time.Minute))
	require.Equal(t, "2-00:05:00", formatMinutes(48*time.Hour+5*time.Minute))
}

func TestParseSlurmDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"30": 30 * time.Minute, "1:30": 90 * time.Second, "2:00:00": 2 * time.Hour,
		"1-00:00:00": 24 * time.Hour, "1-2": 26 * time.Hour, "1-2:30": 26*time.Hour + 30*time.Minute,
	} {
		got, ok := parseSlurmDuration(in)
		require.True(t, ok, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"infinite", "UNLIMITED", "", "x"} {
		_, ok := parseSlurmDuration(in)
		require.False(t, ok, in)
	}
}

// sinfo -N -O NodeList:|,StateLong:|,Gres:|,GresUsed:| as real clusters
// print it.
func TestParseNodes(t *testing.T) {
	t.Parallel()
	out := strings.Join([]string{
		"a01|idle|gpu:4|gpu:0|",
		"a02|mixed|gpu:a100:8(S:0-1)|gpu:a100:3(IDX:0-1,4)|",
		"a03|allocated|gpu:4|gpu:4|",
		"a04|drained|gpu:8|gpu:0|",
		"a05|idle*|gpu:8|gpu:0|",
		"a06|down*|gpu:8|gpu:0|",
		"a07|mixed|gpu:a100:2,gpu:h100:2(S:1)|gpu:a100:1(IDX:0),gpu:h100:0|",
		"c01|idle|(null)|gpu:0|",
		"",
	}, "\n")
	free, largest, total := parseNodes(out)
	require.Equal(t, 4+5+0+3, free)
	require.Equal(t, 8, largest)
	require.Equal(t, 4+8+4+8+8+8+4, total)
}

func TestParseJob(t *testing.T) {
	t.Parallel()
	ji, err := parseJob("JobId=12 JobName=greenq-x UserId=root(0) JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 ExitCode=42:0 Command=/x y")
	require.NoError(t, err)
	require.Equal(t, jobInfo{State: "FAILED", Reason: "NonZeroExitCode", Exit: 42}, ji)
	_, err = parseJob("slurm_load_jobs error")
	require.Error(t, err)
}

// Slurm's final states map to exit statuses, Slurm's own ends to errors
// saying so, and the node's to executor.ErrLost.
func TestExitOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		ji   jobInfo
		code int
		lost bool
		err  string
	}{
		{jobInfo{State: "COMPLETED"}, 0, false, ""},
		{jobInfo{State: "FAILED", Exit: 3}, 3, false, ""},
		{jobInfo{State: "FAILED", Signal: 9}, 137, false, ""},
		{jobInfo{State: "CANCELLED", Signal: 9}, 137, false, ""},
		{jobInfo{State: "CANCELLED", Exit: 42}, 42, false, ""},
		{jobInfo{State: "CANCELLED"}, 143, false, ""},
		{jobInfo{State: "TIMEOUT", Signal: 15}, 143, false, "time limit"},
		{jobInfo{State: "OUT_OF_MEMORY", Signal: 9}, 137, false, "out of memory"},
		{jobInfo{State: "NODE_FAIL"}, 0, true, "NODE_FAIL"},
		{jobInfo{State: "PREEMPTED", Signal: 15}, 143, true, "PREEMPTED"},
		{jobInfo{State: "BOOT_FAIL"}, 0, true, "BOOT_FAIL"},
	}
	for _, tc := range tests {
		ex := exitOf("7", tc.ji)
		require.Equal(t, tc.code, ex.Code, tc.ji.State)
		require.Equal(t, tc.lost, errors.Is(ex.Err, executor.ErrLost), tc.ji.State)
		if tc.err == "" {
			require.NoError(t, ex.Err, tc.ji.State)
		} else {
			require.ErrorContains(t, ex.Err, tc.err)
		}
	}
	require.True(t, final("NODE_FAIL") && final("COMPLETED") && !final("RUNNING") && !final("COMPLETING"))
	require.True(t, requeued("REQUEUED") && !requeued("PENDING"))
}

// The environment file carries any value through sh: quotes, line breaks,
// dollar signs, backslashes.
func TestEnvScriptRoundTrip(t *testing.T) {
	t.Parallel()
	env := []string{"A=plain", "B=it's \"quoted\" $HOME `id` \\ end", "C=line1\nline2\n", "D=", "E==x=", "bad name=x"}
	f := filepath.Join(t.TempDir(), "env")
	require.NoError(t, os.WriteFile(f, envScript(env), 0o600))
	out, err := exec.Command("/bin/sh", "-c", `. "$0"; printf '%s\0' "$A" "$B" "$C" "$D" "$E"`, f).Output()
	require.NoError(t, err)
	require.Equal(t, []string{"plain", "it's \"quoted\" $HOME `id` \\ end", "line1\nline2\n", "", "=x=", ""},
		strings.Split(string(out), "\x00"))
	require.NotContains(t, string(envScript(env)), "bad name")
}

func TestAccountsEnergy(t *testing.T) {
	t.Parallel()
	require.False(t, accountsEnergy("AccountingStorageType   = accounting_storage/none\nAcctGatherEnergyType    = acct_gather_energy/none\n"))
	require.False(t, accountsEnergy("AccountingStorageType = accounting_storage/slurmdbd\nAcctGatherEnergyType = acct_gather_energy/none\n"))
	require.True(t, accountsEnergy("AccountingStorageType = accounting_storage/slurmdbd\nAcctGatherEnergyType = acct_gather_energy/ipmi\n"))
	r, ok := parseConsumedEnergy("7200000|3600|a01\n")
	require.True(t, ok)
	require.InDelta(t, 2.0, r.GPUKWh, 1e-9)
	require.Equal(t, "slurm", r.Meter)
	require.Equal(t, greenq.EnergySlurm, r.Source)
	_, ok = parseConsumedEnergy("0|3600|a01\n")
	require.False(t, ok, "0 is what Slurm reports when it measured nothing")
}

// sbatch gets the partition, account, GPUs, time limit, warning, user
// and container options; nothing of the environment.
func TestSbatchArgs(t *testing.T) {
	t.Parallel()
	e := &Executor{cfg: Config{Partition: "gpu", Account: "ml", ContainerFlag: "--container-image", ExtraArgs: []string{"--qos=low"}}}
	s := executor.Spec{JobID: "j1", Dir: "/shared/w", GPUCount: 2, Image: "nvcr.io/x:1", Env: []string{"TOKEN=s3cret"},
		Mounts: []executor.Mount{{Path: "/shared/w"}, {Path: "/shared/ckpt", ReadOnly: true}},
		User:   &executor.User{UID: 1000, GID: 100},
		Warn:   executor.Warning{Signal: syscall.SIGUSR1, Before: 5 * time.Minute}}
	args := e.sbatchArgs(s, 90*time.Minute, "/spool/r/output", "/spool/r/job.sh")
	joined := strings.Join(args, " ")
	for _, want := range []string{"--parsable", "--job-name greenq-j1", "--partition gpu", "--account ml", "--nodes=1",
		"--chdir /shared/w", "--output /spool/r/output", "--export=NONE", "--gres=gpu:2", "--time=0-01:30:00",
		"--signal=B:10@300", "--uid=1000", "--gid=100", "--container-image=nvcr.io/x:1",
		"--container-mounts=/shared/w:/shared/w,/shared/ckpt:/shared/ckpt:ro,/spool/r:/spool/r", "--qos=low"} {
		require.Contains(t, joined, want)
	}
	require.Equal(t, "/spool/r/job.sh", args[len(args)-1])
	require.NotContains(t, joined, "s3cret")
	// No GPUs, no limit: neither option.
	args = e.sbatchArgs(executor.Spec{JobID: "j2", Dir: "/w"}, 0, "/o", "/s")
	require.NotContains(t, strings.Join(args, " "), "--gres")
	require.NotContains(t, strings.Join(args, " "), "--time")
	require.NotContains(t, strings.Join(args, " "), "--signal")
}

func TestBatchScript(t *testing.T) {
	t.Parallel()
	s := executor.Spec{JobID: "j1", Dir: "/w d", Argv: []string{"python", "train.py", "--lr", "it's"}}
	got := string(batchScript(s, "/spool/r/env", "/opt/greenq", "/spool/r/reading.json"))
	require.Contains(t, got, `. '/spool/r/env'`)
	require.Contains(t, got, `cd '/w d' || exit 1`)
	require.Contains(t, got, `exec '/opt/greenq' meter --out '/spool/r/reading.json' -- 'python' 'train.py' '--lr' 'it'\''s'`)
	got = string(batchScript(s, "/spool/r/env", "", ""))
	require.Contains(t, got, `exec 'python' 'train.py'`)
}
