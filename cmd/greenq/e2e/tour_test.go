package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq"
)

// TestReadmeTourSweep runs the README tour's last steps with the real
// binary against `greenq dev`: a sweep submitted with --trials 4 and
// managed by its group (list --group, cancel --group, status --group
// --wait), with the API on a port that is not the default.
func TestReadmeTourSweep(t *testing.T) {
	srv := xoStartDev(t, "dev")
	require.Contains(t, srv.Log(), "export GREENQ_API_URL="+srv.URL, "the banner says how to reach an API off the default port")

	code, out, errOut := cli(t, "submit", "--api", srv.URL, "--deadline", "30m", "--duration", "20s", "--trials", "4",
		"--name", "lr-sweep", "--", "sh", "-c", `echo "trial $GREENQ_TRIAL"`)
	require.Equal(t, 0, code, errOut)
	ids := strings.Fields(out)
	require.Len(t, ids, 4, "stdout is the trials' ids, one a line: %q", out)
	m := regexp.MustCompile(`(?m)^group (\S+): 4 trials \(greenq list --group (\S+); greenq cancel --group (\S+)\)$`).FindStringSubmatch(errOut)
	require.NotNil(t, m, "stderr names the group: %q", errOut)
	group := m[1]

	code, out, errOut = cli(t, "list", "--api", srv.URL, "--group", group)
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 5, "a header and the four trials:\n%s", out)
	require.Contains(t, lines[0], "TRIAL")
	for i, id := range ids {
		require.Contains(t, lines[i+1], id, "in trial order")
	}

	code, out, errOut = cli(t, "cancel", "--api", srv.URL, "--group", group)
	require.Equal(t, 0, code, errOut)
	require.Contains(t, errOut, "group "+group+": cancelled ")

	// Every trial has ended (cancelled, or done before the cancel came):
	// the wait returns at once and mirrors them.
	code, out, errOut = cli(t, "status", "--api", srv.URL, "--group", group, "--wait", "-o", "json")
	var jobs []greenq.Job
	require.NoError(t, json.Unmarshal([]byte(out), &jobs), "%s", out)
	require.Len(t, jobs, 4)
	cancelled := 0
	for _, j := range jobs {
		require.True(t, j.State.Final(), "%s is %s", j.ID, j.State)
		require.Equal(t, group, j.Group)
		if j.State == greenq.StateCancelled {
			cancelled++
		}
	}
	if cancelled > 0 {
		require.Equal(t, 1, code, "a cancelled trial is not success: %s", errOut)
		require.Contains(t, errOut, "was cancelled")
	} else {
		require.Equal(t, 0, code, errOut)
	}
}
