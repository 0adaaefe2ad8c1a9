# mcp-secure: run `make` for the list of targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

GO        ?= go
OPA       := $(GO) tool opa
BIN       := bin/mcp-secure
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
CAPS      := rego/capabilities.json
# Regal is pinned in a module of its own: it is built against an older OPA
# (and gobwas/glob) than the server's go.mod pins, which it does not build with.
REGAL     := $(GO) tool -modfile=tools/regal/go.mod regal
FUZZTIME  ?= 30s

.PHONY: help build run test clients-deps test-go test-rego test-clients policy-tests lint regal fmt bench fuzz deps check caps

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# The binaries are static (no cgo: the pure Go resolver and user lookup):
# no dynamic loader at each start, which a client pays on every spawn.
build: ## Build bin/mcp-secure and, beside it, its sandbox launcher bin/mcp-secure-launch (static)
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/mcp-secure
	CGO_ENABLED=0 $(GO) build -o $(dir $(BIN))mcp-secure-launch ./cmd/mcp-secure-launch

run: ## Run the server over stdio on the embedded default policy
	$(GO) run ./cmd/mcp-secure serve

test: test-go test-rego test-clients ## Run every test: Go (race detector; unit + end-to-end over stdio), Rego and real MCP clients

TRANSCRIPTS := $(CURDIR)/bin/transcripts

clients-deps: ## Install test/clients/node_modules from its lockfile (the TypeScript SDK and the reference filesystem server the upstream e2e tests run)
	cd test/clients && npm ci

test-go: clients-deps ## Go tests with the race detector, including the end-to-end suite that drives the real binary
	rm -rf $(TRANSCRIPTS)
	MCP_SECURE_TRANSCRIPTS=$(TRANSCRIPTS) $(GO) test -race -count=1 -timeout 20m ./...

REGO_COVERAGE ?= 95

EXAMPLES := $(wildcard examples/policies/*/policy.yaml)

test-rego: build ## Rego unit tests and decision cases (failures print their name and output), coverage gate on rego/ modules, the example policies
	$(OPA) test --fail-on-empty rego policy-tests examples/rego
	$(OPA) test --coverage --format=json rego policy-tests | $(GO) run ./rego/internal/covgate -dir rego/ -threshold $(REGO_COVERAGE)
	@# Each example policy alone, as the server runs it: its tests under
	@# policy test, and under opa test on what policy export writes.
	@for p in $(EXAMPLES); do d=$$(dirname $$p); n=$$(basename $$d); echo "== $$d"; \
	  $(BIN) policy test --policy $$p; \
	  rm -rf bin/examples/$$n; $(BIN) policy export --policy $$p -o bin/examples/$$n >/dev/null; \
	  $(OPA) test --fail-on-empty bin/examples/$$n $$d/*_test.rego; \
	done

test-clients: build clients-deps ## The TypeScript SDK client and the MCP Inspector CLI against bin/mcp-secure (Node.js 20+)
	cd test/clients && MCP_SECURE_BIN=$(CURDIR)/$(BIN) MCP_SECURE_TRANSCRIPTS=$(TRANSCRIPTS) npm test

policy-tests: test-rego ## Alias for test-rego

CROSS := darwin/amd64 darwin/arm64 linux/arm64 windows/amd64

lint: regal ## gofmt, go vet (here and cross-compiled for macOS, Windows and linux/arm64), opa fmt, opa check --strict and Regal
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2etools ./cmd/mcp-secure/
	@for t in $(CROSS); do echo "go vet GOOS=$${t%/*} GOARCH=$${t#*/}"; GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) vet ./...; done
	@out=$$($(OPA) fmt --list rego policy-tests examples/rego examples/policies); if [ -n "$$out" ]; then echo "opa fmt needed:"; echo "$$out"; exit 1; fi
	$(OPA) check --strict --capabilities $(CAPS) rego policy-tests examples/rego
	@for p in $(EXAMPLES); do d=$$(dirname $$p); echo "opa check --strict $$d"; $(OPA) check --strict --capabilities $(CAPS) rego/mcp $$d; done

regal: ## Regal lint over rego/ and examples/ (.regal/config.yaml)
	$(REGAL) lint rego examples

fmt: ## Format Go and Rego sources
	gofmt -w $$(git ls-files '*.go')
	$(OPA) fmt -w rego policy-tests examples/rego examples/policies

bench: ## Benchmarks: Go micro-benchmarks (-count 5) and mcp-bench scenarios against bin/mcp-secure (and MCP_BENCH_PEER); report in bin/bench-report.md
	GO=$(GO) ./cmd/mcp-bench/bench.sh

fuzz: ## Run each fuzz target for FUZZTIME (default 30s)
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; done

deps: ## Check the layering: every dependency graph against the rules in cmd/mcp-secure/layering_test.go
	$(GO) test -count=1 -run TestLayering ./cmd/mcp-secure/

check: lint test deps ## Everything CI checks

caps: ## Regenerate rego/capabilities.json from the pinned OPA, without network and runtime built-ins
	$(OPA) capabilities --current | $(GO) run ./rego/internal/gencaps > $(CAPS)
