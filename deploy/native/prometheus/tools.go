//go:build tools

// Package tools pins the server this folder builds; deploy/native/build.sh compiles it into the
// user's cache. A module of its own keeps its dependencies out of the services' go.mod.
package tools

import _ "github.com/prometheus/prometheus/cmd/prometheus"
