//go:build tools

// Package tools pins the code generators and linters this repository uses, in a module of
// their own so that their dependencies never enter the services' go.mod.
package tools

import (
	_ "github.com/go-micro/generator/cmd/protoc-gen-micro"
	_ "golang.org/x/perf/cmd/benchstat"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
