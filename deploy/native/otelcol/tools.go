//go:build tools

// Package tools pins the OpenTelemetry Collector Builder (ocb); deploy/native/build.sh runs it
// on manifest.yaml to build the collector into the user's cache. A module of its own keeps its
// dependencies out of the services' go.mod.
package tools

import _ "go.opentelemetry.io/collector/cmd/builder"
