package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(status) }))
	defer srv.Close()
	if err := probe(context.Background(), srv.URL, time.Second); err != nil {
		t.Errorf("healthy endpoint: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := probe(context.Background(), srv.URL, time.Second); err == nil {
		t.Error("a 503 passed the probe")
	}
	srv.Close()
	if err := probe(context.Background(), srv.URL, time.Second); err == nil {
		t.Error("a closed port passed the probe")
	}
}
