# Run `make help` for the targets.
SHELL := /bin/bash
BIN   := $(CURDIR)/.cache/bin
# The code generators, linters and benchstat, pinned in tools/go.mod and built into .cache/bin.
TOOLS := $(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro $(BIN)/staticcheck $(BIN)/benchstat
TOOL_PKGS := google.golang.org/protobuf/cmd/protoc-gen-go \
	github.com/go-micro/generator/cmd/protoc-gen-micro \
	honnef.co/go/tools/cmd/staticcheck \
	golang.org/x/perf/cmd/benchstat
# buf compiles proto/ in place of protoc; pinned in tools/buf/go.mod, a module of its own.
BUF := $(BIN)/buf
CMDS := user-service order-service user-client
# Benchmark builds also trace with the go-micro plugin (MICRO_TRACING=plugin) and serve pprof
# (PPROF_ADDR); production builds link neither. Lint and tests cover every file.
BENCHTAGS := plugintracing,pprof
ALLTAGS := e2e,$(BENCHTAGS)

# The stack runs under docker compose when a Docker engine answers, as local processes
# otherwise (deploy/native); STACK=native or STACK=compose chooses.
STACK ?= $(shell docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1 && echo compose || echo native)
# Settings: the shell's, over deploy/.env's (yours, optional), over deploy/stack.env's, in both
# stacks; STACK_LOCAL_ENV names another file than deploy/.env (cmd/stack reads it too).
STACK_LOCAL_ENV ?= deploy/.env
COMPOSE := docker compose -f deploy/docker-compose.yaml --env-file deploy/stack.env $(if $(wildcard $(STACK_LOCAL_ENV)),--env-file $(STACK_LOCAL_ENV))
# The native stack's supervisor (internal/stack).
NATIVE  := go run ./cmd/stack

.PHONY: help build proto proto-check lint test test-short fuzz-smoke clean up down status logs demo e2e chaos native-tools bench bench-smoke bench-overhead bench-profile compose-smoke script-tests need-postgres need-curl-jq need-docker

help: ## List the targets.
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

build: ## Build the three commands into bin/.
	go build -o bin/ $(addprefix ./cmd/,$(CMDS))

$(TOOLS) &: tools/go.mod tools/go.sum
	@echo "== building protoc-gen-go, protoc-gen-micro, staticcheck and benchstat into .cache/bin (once; 1-2 min)"
	cd tools && go build -o $(BIN)/ $(TOOL_PKGS)

$(BUF): tools/buf/go.mod tools/buf/go.sum
	@echo "== building buf into .cache/bin (once; 3-5 min)"
	cd tools/buf && go build -o $(BIN)/ github.com/bufbuild/buf/cmd/buf

proto: $(TOOLS) $(BUF) ## Regenerate the Go code of proto/ with buf and the pinned generators.
	scripts/proto.sh

proto-check: $(TOOLS) $(BUF) ## Fail if the committed generated code is stale.
	scripts/proto-check.sh

# What the make path needs beyond Go: found, or installed when it can be (root with apt-get).
need-postgres:
	@scripts/need.sh "the PostgreSQL tests" initdb postgresql '/usr/lib/postgresql/*/bin/initdb'
need-curl-jq:
	@scripts/need.sh "make compose-smoke" curl curl
	@scripts/need.sh "make compose-smoke" jq jq
need-docker:
	@scripts/need.sh "make compose-smoke" dockerd docker.io
	@scripts/need.sh "make compose-smoke's images" busybox busybox-static

# Tests of the scripts that guard the make path: the staleness check and need.sh.
script-tests: $(TOOLS) $(BUF)
	scripts/proto-check_test.sh
	scripts/need_test.sh
	scripts/make-help_test.sh

lint: $(TOOLS) ## gofmt, go vet and staticcheck, on every module.
	@unformatted=$$(gofmt -l cmd internal proto tools e2e deploy); \
		if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet ./... && go vet -tags $(ALLTAGS) ./...
	$(BIN)/staticcheck ./... && $(BIN)/staticcheck -tags $(ALLTAGS) ./...
	cd deploy && go vet ./... && $(BIN)/staticcheck ./...

test: need-postgres lint proto-check script-tests ## The test suite: lint, generated code, every test with the race detector.
	go test -race -count=1 -tags $(BENCHTAGS) ./...
	cd deploy && go test -count=1 ./...

# -fuzz takes one target, so one run each; FUZZTIME=5m searches longer.
FUZZTIME ?= 10s
fuzz-smoke: ## Each fuzz target for a few seconds (FUZZTIME, default 10s).
	go test -run '^$$' -fuzz '^FuzzValidateNewUser$$' -fuzztime $(FUZZTIME) ./internal/handler
	go test -run '^$$' -fuzz '^FuzzValidateOrder$$' -fuzztime $(FUZZTIME) ./internal/handler
	go test -run '^$$' -fuzz '^FuzzCarrier$$' -fuzztime $(FUZZTIME) ./internal/wrapper

native-tools: ## Build Consul, NATS, the collector, Jaeger and etcd into the cache (first time: 8-25 min).
	deploy/native/build.sh all

e2e: native-tools ## Start the native stack from scratch, run the demo, check the traces in Jaeger.
	go test -tags e2e -count=1 -timeout 20m -v -run 'TestNativeStack|TestTailSampling|TestEtcdRegistry' ./e2e/

chaos: native-tools ## Fault tests on the native stack (~6 min); figures in run/chaos/report.md.
	go test -tags e2e -count=1 -timeout 40m -v -run TestChaos ./e2e/

bench: native-tools ## What tracing costs on the native stack: four modes, services pinned apart, 5 rounds (~9 min; BENCH_* settings, see cmd/loadgen/bench.go); table in run/bench/
	go run ./cmd/loadgen bench

bench-smoke: native-tools ## The bench harnesses in a few seconds per mode.
	go run ./cmd/loadgen bench -smoke
	cd internal/app && BENCH_OVERHEAD_TIME=500x go test -tags $(BENCHTAGS) -run '^$$' -bench '^BenchmarkOverhead$$' -benchtime 1x .
	go test -run '^$$' -bench '^BenchmarkSDKFloor$$' -benchtime 2000x ./internal/telemetry

bench-overhead: $(TOOLS) ## What tracing costs a request's CPU, in process: four modes, 10 interleaved rounds, benchstat (~6 min).
	scripts/bench-overhead.sh

bench-profile: $(TOOLS) ## One round of bench-overhead with CPU profiles, and each traced mode's difference from none.
	scripts/bench-overhead.sh --profile

compose-smoke: need-docker need-curl-jq native-tools ## The compose stack on a real Docker engine, images built here (needs dockerd: Debian's docker.io).
	deploy/compose-smoke/smoke.sh

# --no-recreate: a running stack keeps the settings it started with, as the native one does.
up: ## Start what is not running and wait until every part is healthy.
ifeq ($(STACK),compose)
	$(COMPOSE) up -d --build --wait --no-recreate
else
	$(NATIVE) up
endif

down: ## Stop everything `make up` started.
ifeq ($(STACK),compose)
	$(COMPOSE) --profile demo down
else
	$(NATIVE) down
endif

status: ## What runs and whether it is healthy.
ifeq ($(STACK),compose)
	$(COMPOSE) ps
else
	@$(NATIVE) status
endif

logs: ## The last lines of every log (native: `go run ./cmd/stack logs NAME` follows one).
ifeq ($(STACK),compose)
	$(COMPOSE) logs --tail 30
else
	@$(NATIVE) logs
endif

demo: up ## Run the client scenario, print each call's trace, then the create-user trace from Jaeger.
ifeq ($(STACK),compose)
	$(COMPOSE) run --rm --build --no-deps user-client -trace-tree
else
	@go build -o run/bin/ ./cmd/user-client
	@$(NATIVE) exec run/bin/user-client -trace-tree
endif

test-short: ## Unit tests only, without the in-process stack.
	go test -short -count=1 ./...

clean: ## Remove built binaries and local data (keeps the tool cache).
	rm -rf bin data run
