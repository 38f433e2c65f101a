package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/go-micro-otel/reference/internal/handler"
	"github.com/go-micro-otel/reference/internal/loadgen"
	"github.com/go-micro-otel/reference/internal/stack"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

// The tracing modes the benchmark compares. Every traced mode exports over OTLP to the
// collector.
var modes = []struct {
	name string
	env  []string
}{
	{"none", []string{"MICRO_TRACING=none", "OTEL_SDK_DISABLED=true"}},
	{"ours-10%", []string{"MICRO_TRACING=ours", "OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.1"}},
	{"ours-100%", []string{"MICRO_TRACING=ours", "OTEL_TRACES_SAMPLER=parentbased_always_on"}},
	{"plugin-100%", []string{"MICRO_TRACING=plugin", "OTEL_TRACES_SAMPLER=parentbased_always_on"}},
}

// services are the components the benchmark runs afresh for each mode.
var services = []string{"user-service", "order-service"}

// benchConfig is one benchmark run's shape.
type benchConfig struct {
	smoke               bool
	rounds, concurrency int
	get, create, warmup time.Duration
}

// bench is `make bench`: what tracing costs. user.service and order.service run under load on
// the native stack (real Consul, NATS, collector and Jaeger) in each mode, measured back to
// back, interleaved and rotated every round so that drift hits all of them alike. The results
// go to run/bench/results.jsonl, the table to run/bench/table.md.
func bench(args []string) int {
	var cfg benchConfig
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.BoolVar(&cfg.smoke, "smoke", false, "one round of a few seconds per mode, to check the harness itself")
	fs.IntVar(&cfg.rounds, "rounds", 3, "rounds: each runs every mode")
	fs.IntVar(&cfg.concurrency, "c", 16, "concurrent callers")
	fs.DurationVar(&cfg.get, "get", 15*time.Second, "measured time of GetUser per mode and round")
	fs.DurationVar(&cfg.create, "create", 10*time.Second, "measured time of CreateUser per mode and round")
	fs.DurationVar(&cfg.warmup, "warmup", 3*time.Second, "unmeasured time before each")
	_ = fs.Parse(args)
	if cfg.smoke {
		cfg.rounds, cfg.get, cfg.create, cfg.warmup = 1, 2*time.Second, 2*time.Second, time.Second
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, cfg, strings.Join(os.Args[1:], " ")); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

func runBench(ctx context.Context, cfg benchConfig, invocation string) (err error) {
	st, err := stack.Open(".")
	if err != nil {
		return err
	}
	st.Out = os.Stderr
	out := filepath.Join(st.Run, "bench")
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(out, "*.log"))
	for _, f := range append(old, filepath.Join(out, "results.jsonl")) {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}

	// Leave the stack as it was found: stop it at the end if this run started it, start its
	// services again if they ran.
	wasRunning := st.PIDs()
	if _, err := st.Up(ctx); err != nil {
		return err
	}
	defer func() {
		if len(wasRunning) == 0 {
			err = errors.Join(err, st.Down(context.WithoutCancel(ctx)))
		} else if _, ok := wasRunning["user-service"]; ok {
			_, restart := st.Start(context.WithoutCancel(ctx), services...)
			err = errors.Join(err, restart)
		}
	}()
	if err := st.Stop(ctx, services...); err != nil { // the benchmark runs its own, one mode at a time
		return err
	}
	// The benchmark's services also trace with the go-micro plugin (MICRO_TRACING=plugin) and
	// serve pprof, which production builds lack.
	bench, err := stack.New(st.Root)
	if err != nil {
		return err
	}
	bench.Out, bench.BuildTags = os.Stderr, "plugintracing,pprof"
	// loadgen's calls find the services and authenticate as every client of the stack does.
	for _, kv := range st.ClientEnv() {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}

	results, err := os.Create(filepath.Join(out, "results.jsonl"))
	if err != nil {
		return err
	}
	defer results.Close()
	var all []loadgen.Result
	start := time.Now()
	for r := range cfg.rounds {
		for i := range modes {
			mode := modes[(i+r)%len(modes)]
			rs, err := measureMode(ctx, bench, cfg, out, mode.name, mode.env, r+1)
			for _, res := range rs {
				b, _ := json.Marshal(res)
				fmt.Fprintln(results, string(b))
				fmt.Printf("  round %d %s %s: %.0f req/s, p99 %.2f ms, %d errors\n", res.Round, res.Label, res.Method, res.RPS, res.P99, res.Errors)
			}
			all = append(all, rs...)
			if err != nil {
				return err
			}
		}
	}

	var table strings.Builder
	fmt.Fprintf(&table, "Measured %s by `go run ./cmd/loadgen %s` at commit %s:\n", time.Now().UTC().Format(time.DateOnly), invocation, commit(st.Root))
	fmt.Fprintf(&table, "%d cores (%s), %s, concurrency %d, GetUser %s and CreateUser %s per run after %s of warm-up, %d round(s); medians over rounds.\n\n",
		runtime.NumCPU(), cpuModel(), runtime.Version(), cfg.concurrency, cfg.get, cfg.create, cfg.warmup, cfg.rounds)
	loadgen.Report(&table, all, "none")
	if err := os.WriteFile(filepath.Join(out, "table.md"), []byte(table.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("\n%s(%.0f s; results in run/bench/)\n", table.String(), time.Since(start).Seconds())

	var errs int64
	for _, res := range all {
		errs += res.Errors
	}
	if want := cfg.rounds * len(modes) * 2; len(all) != want || errs != 0 {
		return fmt.Errorf("%d runs of %d, %d errors", len(all), want, errs)
	}
	return nil
}

// measureMode starts both services afresh, with an empty database, in one tracing mode, runs
// GetUser then CreateUser against them, and stops them.
func measureMode(ctx context.Context, st *stack.Stack, cfg benchConfig, out, mode string, env []string, round int) (_ []loadgen.Result, err error) {
	data := filepath.Join(out, "data")
	if err := os.RemoveAll(data); err != nil {
		return nil, err
	}
	var procs []*stack.Process
	defer func() {
		for _, p := range procs {
			err = errors.Join(err, p.Stop(20*time.Second))
		}
		// Gone from Consul before the next mode registers on the same ports.
		err = errors.Join(err, deregistered(ctx, st))
	}()
	var pids []int
	for _, name := range services {
		log := filepath.Join(out, fmt.Sprintf("%s-%s-%d.log", name, strings.TrimSuffix(mode, "%"), round))
		p, err := st.Spawn(ctx, name, log, append(env, "DATA_DIR="+data)...)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		pids = append(pids, p.PID())
	}
	var rs []loadgen.Result
	for _, m := range []struct {
		method string
		d      time.Duration
	}{{loadgen.GetUser, cfg.get}, {loadgen.CreateUser, cfg.create}} {
		// A client of its own, as a loadgen process would have: no connection or registry
		// cache from the previous services.
		c, err := newClient()
		if err != nil {
			return rs, err
		}
		r, err := loadgen.Run(ctx, userpb.NewUserService(handler.UserServiceName, c), loadgen.Config{Method: m.method, Concurrency: cfg.concurrency, Warmup: cfg.warmup,
			Duration: m.d, Users: 200, PIDs: pids, AttemptTimeout: time.Second, Label: mode, Round: round})
		// Its registry watch would outlive it.
		err = errors.Join(err, c.Options().Selector.Close())
		if err != nil {
			return rs, err
		}
		if r.Errors > 0 {
			fmt.Fprintf(os.Stderr, "bench: %s %s: %d errors, the first: %s\n", mode, m.method, r.Errors, r.FirstError)
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// deregistered waits until neither service has an instance in Consul.
func deregistered(ctx context.Context, st *stack.Stack) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		n := 0
		for _, svc := range []string{handler.UserServiceName, handler.OrderServiceName} {
			in, err := st.Instances(ctx, svc)
			if err != nil {
				n++ // Consul cannot tell: not gone as far as anyone knows
			}
			n += len(in)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the services are still in Consul: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// commit names the checkout's commit, +changes when it has uncommitted changes.
func commit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if exec.Command("git", "-C", root, "diff", "--quiet").Run() != nil {
		c += "+changes"
	}
	return c
}

// cpuModel is the processor's name, from /proc/cpuinfo.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown processor"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown processor"
}
