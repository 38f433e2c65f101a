//go:build !plugintracing

package app

import (
	"go-micro.dev/v4"
	"go.opentelemetry.io/otel/trace"
)

// pluginTracingBuilt: this binary was built without the go-micro plugins' wrapper (build tag
// plugintracing), which only the benchmarks use.
const pluginTracingBuilt = false

func pluginTracing(trace.TracerProvider) []micro.Option { return nil }
