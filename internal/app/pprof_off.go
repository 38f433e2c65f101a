//go:build !pprof

package app

import "log/slog"

// pprofBuilt: this binary was built without net/http/pprof (build tag pprof).
const pprofBuilt = false

func servePprof(string, *slog.Logger) {}
