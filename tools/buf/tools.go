//go:build tools

// Package tools pins buf, which compiles proto/ and runs the generators of ../go.mod, so that
// no system protoc is needed. A module of its own: buf's dependencies (a newer gRPC, and a
// genproto that gRPC needs) do not build beside protoc-gen-micro's old genproto.
package tools

import _ "github.com/bufbuild/buf/cmd/buf"
