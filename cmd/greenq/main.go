// Command greenq is greenq's one binary: the server, the GPU worker, the
// all-in-one dev stack, the back-test and the client commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/greenq/greenq/cmd/greenq/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
