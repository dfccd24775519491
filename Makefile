# greenq — `make run` starts the whole stack with a demo; `make test` runs
# every test against a throw-away redis-server it starts itself.

GO      ?= go
BIN     := bin/greenq
PKGS    := ./...

.PHONY: all build run test bench fuzz vet clean

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

clean:
	rm -rf bin
