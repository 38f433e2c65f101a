# Run `make help` for the targets.
SHELL := /bin/bash
BIN   := $(CURDIR)/.cache/bin
# The code generators and linters, pinned in tools/go.mod and built into .cache/bin.
TOOLS := $(BIN)/protoc-gen-go $(BIN)/protoc-gen-micro $(BIN)/staticcheck
TOOL_PKGS := google.golang.org/protobuf/cmd/protoc-gen-go \
	github.com/go-micro/generator/cmd/protoc-gen-micro \
	honnef.co/go/tools/cmd/staticcheck
CMDS := user-service order-service user-client

.PHONY: help build proto proto-check lint test test-short clean

help: ## List the targets.
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

build: ## Build the three commands into bin/.
	go build -o bin/ $(addprefix ./cmd/,$(CMDS))

$(TOOLS) &: tools/go.mod tools/go.sum
	cd tools && go build -o $(BIN)/ $(TOOL_PKGS)

proto: $(TOOLS) ## Regenerate the Go code of proto/ (needs protoc: apt-get install protobuf-compiler).
	scripts/proto.sh

proto-check: $(TOOLS) ## Fail if the committed generated code is stale.
	scripts/proto-check.sh

lint: $(TOOLS) ## gofmt, go vet and staticcheck.
	@unformatted=$$(gofmt -l cmd internal proto tools); \
		if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	$(BIN)/staticcheck ./...

test: lint proto-check ## The test suite: lint, generated code, and every test with the race detector.
	go test -race -count=1 ./...

test-short: ## Unit tests only, without the in-process stack.
	go test -short -count=1 ./...

clean: ## Remove built binaries and local data (keeps the tool cache).
	rm -rf bin data run
