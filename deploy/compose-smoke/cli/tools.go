//go:build tools

// Package tools pins the docker compose CLI that compose-smoke.sh builds when the machine has
// none (it is a Go program; the Go module proxy serves it).
package tools

import _ "github.com/docker/compose/v2/cmd"
