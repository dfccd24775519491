package cli

import (
	"github.com/spf13/pflag"

	"github.com/greenq/greenq/worker"
)

// addRunAs adds --run-as-user, which makes the worker start jobs as an
// unprivileged user.
func addRunAs(f *pflag.FlagSet, wc *worker.Config) {
	f.StringVar(&wc.RunAsUser, "run-as-user", "", "start jobs as this unprivileged user (the worker must run as root)")
}
