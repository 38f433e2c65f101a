package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-micro-otel/reference/internal/handler"
	"github.com/go-micro-otel/reference/internal/loadgen"
	"github.com/go-micro-otel/reference/internal/poll"
	"github.com/go-micro-otel/reference/internal/proc"
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
	smoke, profile      bool
	rounds, concurrency int
	get, create, warmup time.Duration
	// getRate and createRate, when above zero, pace every mode to the same load (requests per
	// second), so that CPU per request compares like with like: under a closed loop, a mode
	// whose spans keep the other cores busy gets fewer requests, and a service that is less
	// busy spends more CPU on each.
	getRate, createRate int
}

// pprofAddrs are where each service serves its profiles under -profile.
var pprofAddrs = map[string]string{"user-service": "127.0.0.1:6061", "order-service": "127.0.0.1:6062"}

// bench is `make bench`: what tracing costs. user.service and order.service run under load on
// the native stack (real Consul, NATS, collector and Jaeger) in each mode, measured back to
// back, interleaved and rotated every round so that drift hits all of them alike. On a machine
// of two cores or more, the services run on the upper half of the cores and everything else
// (this load generator, Consul, NATS, the collector, Jaeger) on the lower half, so that what
// the services measure is not taken by the work their spans cause elsewhere. The results go to
// run/bench/results.jsonl, the table (every figure the median over the rounds, with its
// spread) to run/bench/table.md. Each flag's default can be set in the environment (BENCH_*),
// which is how `make bench` takes them.
func bench(args []string) int {
	var cfg benchConfig
	var env benchEnv
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	fs.BoolVar(&cfg.smoke, "smoke", false, "one round of a few seconds per mode, to check the harness itself")
	fs.BoolVar(&cfg.profile, "profile", false, "one round with a CPU profile of each service over each measured window (run/bench/profiles), and each traced mode's difference from none")
	fs.IntVar(&cfg.rounds, "rounds", env.int("BENCH_ROUNDS", 5), "rounds: each runs every mode (BENCH_ROUNDS)")
	fs.IntVar(&cfg.concurrency, "c", env.int("BENCH_CONCURRENCY", 16), "concurrent callers (BENCH_CONCURRENCY)")
	fs.DurationVar(&cfg.get, "get", env.duration("BENCH_GET", 10*time.Second), "measured time of GetUser per mode and round (BENCH_GET)")
	fs.DurationVar(&cfg.create, "create", env.duration("BENCH_CREATE", 8*time.Second), "measured time of CreateUser per mode and round (BENCH_CREATE)")
	fs.DurationVar(&cfg.warmup, "warmup", env.duration("BENCH_WARMUP", 2*time.Second), "unmeasured time before each (BENCH_WARMUP)")
	fs.IntVar(&cfg.getRate, "get-rate", env.int("BENCH_GET_RATE", 0), "GetUser requests per second in every mode; 0: as many as answered (BENCH_GET_RATE)")
	fs.IntVar(&cfg.createRate, "create-rate", env.int("BENCH_CREATE_RATE", 0), "CreateUser requests per second in every mode; 0: as many as answered (BENCH_CREATE_RATE)")
	_ = fs.Parse(args)
	if err := errors.Join(env.errs...); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	switch {
	case cfg.smoke:
		cfg.rounds, cfg.get, cfg.create, cfg.warmup = 1, 2*time.Second, 2*time.Second, time.Second
	case cfg.profile:
		cfg.rounds = 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, cfg, strings.Join(os.Args[1:], " ")); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}

// benchEnv reads the flags' defaults from BENCH_* variables. A value that does not parse is
// an error, not the default: a run meant to be paced at BENCH_GET_RATE=6OO would otherwise run
// a closed loop, and be reported as what was meant.
type benchEnv struct{ errs []error }

// int is the whole number in the variable key, or def when it is unset or empty.
func (e *benchEnv) int(key string, def int) int {
	return fromEnv(e, key, def, strconv.Atoi, "a whole number")
}

// duration is the duration in the variable key ("10s"), or def when it is unset or empty.
func (e *benchEnv) duration(key string, def time.Duration) time.Duration {
	return fromEnv(e, key, def, time.ParseDuration, "a duration such as 10s")
}

func fromEnv[T any](e *benchEnv, key string, def T, parse func(string) (T, error), want string) T {
	v := os.Getenv(key)
	if v == "" {
		return def
	}
	x, err := parse(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q is not %s", key, v, want))
		return def
	}
	return x
}

// placement is which cores the services get and which everything else: the upper and the lower
// half of the cores this process may use, or no pinning at all on a single core.
type placement struct{ all, services, others []int }

func place() (placement, error) {
	all, err := proc.Cores(os.Getpid())
	if err != nil || len(all) < 2 {
		return placement{all: all}, err
	}
	return placement{all: all, services: all[len(all)/2:], others: all[:len(all)/2]}, nil
}

func (p placement) pinned() bool { return p.services != nil }

// describe says where the services ran, for the table's heading.
func (p placement) describe() string {
	if !p.pinned() {
		return ""
	}
	return fmt.Sprintf("services on cores %s, everything else on %s; ", cores(p.services), cores(p.others))
}

// cores prints a list of cores as taskset does: 0, or 2-3.
func cores(cs []int) string {
	if len(cs) == 1 {
		return strconv.Itoa(cs[0])
	}
	return fmt.Sprintf("%d-%d", cs[0], cs[len(cs)-1])
}

// pinStack moves this process and the stack's running components to cores.
func pinStack(st *stack.Stack, cores []int) error {
	errs := []error{proc.Pin(os.Getpid(), cores)}
	for _, pid := range st.PIDs() {
		errs = append(errs, proc.Pin(pid, cores))
	}
	return errors.Join(errs...)
}

// rateText says how a method was paced, when it was.
func rateText(rate int) string {
	if rate > 0 {
		return fmt.Sprintf(" at %d req/s", rate)
	}
	return ""
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
	for _, f := range append(old, filepath.Join(out, "results.jsonl"), filepath.Join(out, "profiles")) {
		if err := os.RemoveAll(f); err != nil {
			return err
		}
	}
	if cfg.profile {
		if err := os.Mkdir(filepath.Join(out, "profiles"), 0o755); err != nil {
			return err
		}
	}
	cpus, err := place()
	if err != nil {
		return err
	}

	// The benchmark runs a stack of its own, in run/bench/stack, started afresh and its data
	// deleted after: its millions of spans would otherwise fill the stack's Jaeger and queue up
	// in the collector ahead of the traces a user looks at next, and its binaries (built with
	// the plugin and pprof) would replace the stack's. The ports are the same, so a stack that
	// runs is stopped first and started again at the end, its data untouched.
	wasRunning := st.PIDs()
	if len(wasRunning) > 0 {
		fmt.Fprintln(os.Stderr, "== the running stack stops for the benchmark, and starts again after it (its data stays)")
		if err := st.Down(ctx); err != nil {
			return err
		}
		defer func() {
			// Its processes inherit this one's cores: every core again, as the stack had.
			if cpus.pinned() {
				err = errors.Join(err, proc.Pin(os.Getpid(), cpus.all))
			}
			names := make([]string, 0, len(wasRunning))
			for name := range wasRunning {
				names = append(names, name)
			}
			_, restart := st.Start(context.WithoutCancel(ctx), names...)
			err = errors.Join(err, restart)
		}()
	}
	bench, err := stack.New(st.Root)
	if err != nil {
		return err
	}
	bench.Run = filepath.Join(out, "stack")
	if err := os.RemoveAll(bench.Run); err != nil {
		return err
	}
	// The benchmark's services also trace with the go-micro plugin (MICRO_TRACING=plugin) and
	// serve pprof, which production builds lack.
	bench.Out, bench.BuildTags = os.Stderr, "plugintracing,pprof"
	fmt.Fprintf(os.Stderr, "== the benchmark's own stack, in %s\n", bench.Run)
	if _, err := bench.Up(ctx); err != nil {
		return errors.Join(err, bench.Down(context.WithoutCancel(ctx)))
	}
	defer func() {
		err = errors.Join(err, bench.Down(context.WithoutCancel(ctx)))
		for _, data := range []string{"jaeger", "otelcol", "nats", "data"} {
			err = errors.Join(err, os.RemoveAll(filepath.Join(bench.Run, data)))
		}
	}()
	if err := bench.Stop(ctx, services...); err != nil { // the benchmark runs its own, one mode at a time
		return err
	}
	if cpus.pinned() {
		if err := pinStack(bench, cpus.others); err != nil {
			return err
		}
	}
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
			rs, err := measureMode(ctx, bench, cfg, cpus, out, mode.name, mode.env, r+1)
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
	fmt.Fprintf(&table, "%d cores (%s), %s, concurrency %d, GetUser %s%s and CreateUser %s%s per run after %s of warm-up, %d round(s); %severy figure the median over the rounds (min–max).\n\n",
		len(cpus.all), cpuModel(), runtime.Version(), cfg.concurrency, cfg.get, rateText(cfg.getRate), cfg.create, rateText(cfg.createRate),
		cfg.warmup, cfg.rounds, cpus.describe())
	loadgen.Report(&table, all, "none")
	if err := os.WriteFile(filepath.Join(out, "table.md"), []byte(table.String()), 0o644); err != nil {
		return err
	}
	fmt.Printf("\n%s(%.0f s; results in run/bench/)\n", table.String(), time.Since(start).Seconds())
	if cfg.profile {
		if err := profileDiffs(ctx, filepath.Join(out, "profiles")); err != nil {
			return err
		}
	}

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
func measureMode(ctx context.Context, st *stack.Stack, cfg benchConfig, cpus placement, out, mode string, env []string, round int) (_ []loadgen.Result, err error) {
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
		p, err := st.Spawn(ctx, name, log, append(env, "DATA_DIR="+data, "PPROF_ADDR="+pprofAddrs[name])...)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
		pids = append(pids, p.PID())
		if cpus.pinned() {
			if err := proc.Pin(p.PID(), cpus.services); err != nil {
				return nil, err
			}
		}
	}
	var rs []loadgen.Result
	for _, m := range []struct {
		method string
		d      time.Duration
		rate   int
	}{{loadgen.GetUser, cfg.get, cfg.getRate}, {loadgen.CreateUser, cfg.create, cfg.createRate}} {
		// A client of its own, as a loadgen process would have: no connection or registry
		// cache from the previous services.
		c, err := newClient()
		if err != nil {
			return rs, err
		}
		var profiled <-chan error
		if cfg.profile {
			profiled = profile(ctx, filepath.Join(out, "profiles"), mode, m.method, cfg.warmup, m.d)
		}
		r, err := loadgen.Run(ctx, userpb.NewUserService(handler.UserServiceName, c), loadgen.Config{Method: m.method, Concurrency: cfg.concurrency,
			Rate: m.rate, Warmup: cfg.warmup, Duration: m.d, Users: 200, PIDs: pids, AttemptTimeout: time.Second, Label: mode, Round: round})
		if profiled != nil {
			err = errors.Join(err, <-profiled)
		}
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

// profile takes a CPU profile of each service over a measured window that starts after warmup
// (and after the load generator's set-up: GetUser creates the users it reads first, in a second
// at most) and lasts d less a second, into dir/MODE_METHOD_SERVICE.pprof. The channel gives
// what went wrong, once both are taken.
func profile(ctx context.Context, dir, mode, method string, warmup, d time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		var errs []error
		select {
		case <-ctx.Done():
			done <- ctx.Err()
			return
		case <-time.After(warmup + time.Second):
		}
		results := make(chan error, len(services))
		for _, name := range services {
			go func() {
				url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddrs[name], int((d - time.Second).Seconds()))
				file := filepath.Join(dir, fmt.Sprintf("%s_%s_%s.pprof", mode, method, strings.TrimSuffix(name, "-service")))
				results <- fetch(ctx, url, file)
			}()
		}
		for range services {
			errs = append(errs, <-results)
		}
		done <- errors.Join(errs...)
	}()
	return done
}

// fetch writes what url answers to file.
func fetch(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	rsp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer rsp.Body.Close()
	if rsp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, rsp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, rsp.Body)
	return errors.Join(err, f.Close())
}

// profileDiffs prints, per method and service, each traced mode's profile against none's:
// where its CPU goes that none's does not.
func profileDiffs(ctx context.Context, dir string) error {
	for _, method := range []string{loadgen.GetUser, loadgen.CreateUser} {
		for _, name := range services {
			svc := strings.TrimSuffix(name, "-service")
			base := filepath.Join(dir, fmt.Sprintf("none_%s_%s.pprof", method, svc))
			for _, mode := range modes[1:] {
				target := filepath.Join(dir, fmt.Sprintf("%s_%s_%s.pprof", mode.name, method, svc))
				args := []string{"tool", "pprof", "-top", "-normalize", "-nodecount", "20", "-diff_base", base, target}
				fmt.Printf("\n== %s, %s.service, %s against none: go %s\n", method, svc, mode.name, strings.Join(args, " "))
				cmd := exec.CommandContext(ctx, "go", args...)
				cmd.Stdout = os.Stdout
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("go tool pprof: %w", err)
				}
			}
		}
	}
	return nil
}

// deregistered waits until neither service has an instance in Consul.
func deregistered(ctx context.Context, st *stack.Stack) error {
	err := poll.Until(ctx, 30*time.Second, func() error {
		for _, svc := range []string{handler.UserServiceName, handler.OrderServiceName} {
			in, err := st.Instances(ctx, svc)
			if err != nil {
				return err // Consul cannot tell: not gone as far as anyone knows
			}
			if len(in) > 0 {
				return fmt.Errorf("%s has %d instances", svc, len(in))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("the services are still in Consul: %w", err)
	}
	return nil
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
