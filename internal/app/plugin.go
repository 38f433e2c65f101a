//go:build plugintracing

package app

import (
	"context"
	otelplugin "github.com/go-micro/plugins/v4/wrapper/trace/opentelemetry"
	"go-micro.dev/v4"
	"go-micro.dev/v4/metadata"
	"go-micro.dev/v4/server"
	"go.opentelemetry.io/otel/trace"
)

// pluginTracingBuilt says this binary can trace with the go-micro plugins' wrapper, the
// benchmarks' point of comparison (MICRO_TRACING=plugin). Production binaries are built
// without it, and do not link the plugin.
const pluginTracingBuilt = true

// pluginTracing installs the go-micro plugins' OpenTelemetry wrappers.
func pluginTracing(tp trace.TracerProvider) []micro.Option {
	opt := otelplugin.WithTraceProvider(tp)
	return []micro.Option{
		micro.WrapClient(otelplugin.NewClientWrapper(opt)),
		// The plugin reads the caller's trace context from the context's metadata, where
		// go-micro's own server puts the caller's headers and ours does not.
		micro.WrapHandler(callerMetadataInContext),
		micro.WrapHandler(otelplugin.NewHandlerWrapper(opt)),
		micro.WrapSubscriber(otelplugin.NewSubscriberWrapper(opt)),
	}
}

// callerMetadataInContext puts the caller's metadata into the handler's context, as go-micro's
// rpc server does, for wrappers that look for it there.
func callerMetadataInContext(next server.HandlerFunc) server.HandlerFunc {
	return func(ctx context.Context, req server.Request, rsp interface{}) error {
		return next(metadata.NewContext(ctx, metadata.Metadata(req.Header())), req, rsp)
	}
}
