//go:build unix

package worker

import (
	"context"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/greenq/greenq/worker/executor"
	"github.com/greenq/greenq/worker/executor/process"
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
	dir := t.TempDir()
	require.NoError(t, r.chown(dir))
	u := r.user()
	var out strings.Builder
	p, err := process.New().Start(context.Background(), executor.Spec{Argv: []string{"/usr/bin/id", "-u"}, Dir: "/", Output: &out, User: u})
	require.NoError(t, err)
	require.Equal(t, 0, p.Wait().Code)
	require.Equal(t, strconv.FormatUint(uint64(u.UID), 10), strings.TrimSpace(out.String()))
	require.NotEqual(t, "0", strings.TrimSpace(out.String()), "the job must not run as root")
	st, err := os.Stat(dir)
	require.NoError(t, err)
	require.Equal(t, u.UID, st.Sys().(*syscall.Stat_t).Uid, "the job's dirs are its user's")
}
