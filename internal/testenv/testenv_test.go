package testenv

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// fake records how Missing ended a test.
type fake struct {
	testing.TB
	fatal, skip string
}

func (f *fake) Helper()           {}
func (f *fake) Fatal(args ...any) { f.fatal = args[0].(string) }
func (f *fake) Skip(args ...any)  { f.skip = args[0].(string) }

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		ci          string
		fatal, skip string
	}{
		{ci: "true", fatal: "chromium is not installed"},
		{ci: "", skip: "chromium is not installed"},
	} {
		t.Setenv("CI", tc.ci)
		f := &fake{}
		Missing(f, "chromium is not installed")
		require.Equal(t, tc.fatal, f.fatal, "CI=%q", tc.ci)
		require.Equal(t, tc.skip, f.skip, "CI=%q", tc.ci)
	}
}
