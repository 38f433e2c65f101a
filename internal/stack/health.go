package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// probeTimeout bounds one health probe, so that a server that accepts and never answers
// cannot hold up the wait for it.
const probeTimeout = 5 * time.Second

// probeClient keeps no connection open between probes: a pooled connection to a component
// would outlive it, and a stop and start must find its ports free.
var probeClient = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// httpOK is healthy when a GET of url answers 200.
func httpOK(url string) func(context.Context, *Stack, Launch) error {
	return func(ctx context.Context, _ *Stack, _ Launch) error {
		_, err := get(ctx, url, "")
		return err
	}
}

// consulLeader is healthy when Consul has elected a leader: before that it answers, but
// cannot register anything.
func consulLeader(ctx context.Context, s *Stack, _ Launch) error {
	b, err := get(ctx, ConsulHTTP.URL("/v1/status/leader"), s.Setting("CONSUL_HTTP_TOKEN"))
	if err != nil {
		return err
	}
	if leader := string(bytes.TrimSpace(b)); leader == "" || leader == `""` {
		return fmt.Errorf("consul has no leader yet")
	}
	return nil
}

// selfCheck is healthy when the service's own `healthcheck` passes, with the environment it
// runs with: it accepts connections and is registered on its port with a passing check, in the
// registry it uses. Compose runs the same check.
func selfCheck(pkg string) func(context.Context, *Stack, Launch) error {
	return func(ctx context.Context, s *Stack, l Launch) error {
		ctx, cancel := context.WithTimeout(ctx, probeTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, s.command(pkg), "healthcheck")
		cmd.Env = append(s.Environ(), l.Env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s healthcheck: %w: %s", filepath.Base(cmd.Path), err, bytes.TrimSpace(out))
		}
		return nil
	}
}

// Instance is one passing instance of a service in Consul.
type Instance struct {
	ID   string
	Addr string // host:port
}

// Instances lists the passing instances of service (e.g. user.service) in Consul.
func (s *Stack) Instances(ctx context.Context, service string) ([]Instance, error) {
	b, err := get(ctx, ConsulHTTP.URL("/v1/health/service/"+service+"?passing=true"), s.Setting("CONSUL_HTTP_TOKEN"))
	if err != nil {
		return nil, err
	}
	var entries []struct {
		Service struct {
			ID      string
			Address string
			Port    int
		}
	}
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("consul's instances of %s: %w", service, err)
	}
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		out = append(out, Instance{ID: e.Service.ID, Addr: e.Service.Address + ":" + strconv.Itoa(e.Service.Port)})
	}
	return out, nil
}

// get returns the body of a 200 answer to a GET of url, sent with Consul's ACL token when
// token is not empty.
func get(ctx context.Context, url, token string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	rsp, err := probeClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer rsp.Body.Close()
	b, err := io.ReadAll(rsp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if rsp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, rsp.Status)
	}
	return b, nil
}
