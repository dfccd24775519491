# greenq — `make run` starts the whole stack with a demo; `make test` runs
# every test against a throw-away redis-server it starts itself.

GO      ?= go
BIN     := bin/greenq
PKGS    := ./...

# Builds and tests use Go 1.27.3, which the go command fetches from the Go
# module proxy on first use: Go 1.26.8's standard library has known
# vulnerabilities (net/http, crypto/tls, crypto/x509) that govulncheck
# finds called from greenq. The code itself builds with Go 1.26 too.
export GOTOOLCHAIN := go1.27.3
# go-nvml's header marks calls greenq never makes as deprecated (as in
# scripts/lib.sh); without this every cgo build prints a screen of them.
export CGO_CFLAGS := -O2 -g -Wno-deprecated-declarations

.PHONY: all build run test bench fuzz vet vulncheck clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/greenq

run: build
	$(BIN) dev

test:
	./scripts/test.sh

bench: build
	./scripts/bench.sh

fuzz:
	./scripts/fuzz.sh

vet:
	$(GO) vet $(PKGS)

vulncheck:
	./scripts/vulncheck.sh

clean:
	rm -rf bin
