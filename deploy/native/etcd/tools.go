//go:build tools

// Package tools pins the etcd server that TestEtcdRegistry runs; deploy/native/build.sh
// compiles it into the user's cache. A module of its own keeps its dependencies out of the
// services' go.mod.
package tools

import _ "go.etcd.io/etcd/server/v3"
