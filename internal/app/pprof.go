//go:build pprof

package app

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"
)

// pprofBuilt says this binary can serve net/http/pprof (PPROF_ADDR), for profiling under load.
// Production binaries are built without it (build tag pprof).
const pprofBuilt = true

// servePprof serves the profiles on addr, on a mux of its own, with timeouts.
func servePprof(addr string, logger *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// A CPU profile or trace streams for as long as its "seconds" asks.
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 2 * time.Minute}
	logger.Info("pprof listening", "address", addr)
	if err := srv.ListenAndServe(); err != nil {
		logger.Error("pprof stopped", "error", err)
	}
}
