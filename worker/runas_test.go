//go:build unix

package worker

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLookupRunAs(t *testing.T) {
	t.Parallel()
	r, err := lookupRunAs("")
	require.NoError(t, err)
	require.Nil(t, r, "no user: jobs run as the worker")

	_, err = lookupRunAs("no-such-user-greenq")
	require.ErrorContains(t, err, "run_as_user")

	_, err = lookupRunAs("root")
	require.ErrorContains(t, err, "unprivileged", "root is refused")
}

func TestRunAsStartsJobAsUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	r, err := lookupRunAs("nobody")
	if err != nil {
		t.Skipf("no user nobody here: %v", err)
	}
	cmd := exec.Command("id", "-u")
	setProcessGroup(cmd)
	dir := t.TempDir()
	require.NoError(t, r.apply(cmd.SysProcAttr, dir))
	out, err := cmd.Output()
	require.NoError(t, err)
	require.NotEqual(t, "0", strings.TrimSpace(string(out)), "the job must not run as root")
	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.NotNil(t, st)
}
