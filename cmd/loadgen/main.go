// Command loadgen drives user.service through go-micro and reports throughput, latency
// percentiles, errors, and the server processes' CPU and peak memory.
//
//	loadgen -method GetUser -c 16 [-rate 800] -d 15s -pids 123,456 [-label none -round 1] [-json]
//	loadgen report results.jsonl     print the Markdown table of a file of -json results
//	loadgen bench [-smoke|-profile]  the benchmark of `make bench`: every tracing mode on the
//	                                 native stack, interleaved over rounds, the services pinned
//	                                 apart (see bench.go; -h lists its flags and BENCH_* variables)
//
// It finds the services through the registry of MICRO_REGISTRY/MICRO_REGISTRY_ADDRESS and does
// not trace its own calls, so the services' sampling decides what is traced.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"go-micro.dev/v4/client"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/guard"
	"github.com/go-micro-otel/reference/internal/handler"
	"github.com/go-micro-otel/reference/internal/loadgen"
	userpb "github.com/go-micro-otel/reference/proto/user"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "report" {
		os.Exit(report(os.Args[2]))
	}
	if len(os.Args) > 1 && os.Args[1] == "bench" {
		os.Exit(bench(os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	var cfg loadgen.Config
	var pids string
	asJSON := flag.Bool("json", false, "print the result as one JSON line")
	flag.StringVar(&cfg.Method, "method", loadgen.GetUser, "GetUser or CreateUser")
	flag.IntVar(&cfg.Concurrency, "c", 16, "concurrent callers")
	flag.IntVar(&cfg.Rate, "rate", 0, "requests per second, all callers together; 0: each calls again once answered")
	flag.DurationVar(&cfg.Duration, "d", 15*time.Second, "measured time")
	flag.DurationVar(&cfg.Warmup, "warmup", 3*time.Second, "unmeasured time before it")
	flag.IntVar(&cfg.Users, "users", 200, "users created up front for GetUser")
	flag.DurationVar(&cfg.AttemptTimeout, "attempt-timeout", time.Second, "bound on one attempt before go-micro retries it (0: go-micro's 5s)")
	flag.StringVar(&pids, "pids", "", "comma-separated pids of the server processes to measure")
	flag.StringVar(&cfg.Label, "label", "", "label of the result, e.g. the tracing mode")
	flag.IntVar(&cfg.Round, "round", 0, "round of the result")
	flag.Parse()
	for _, p := range strings.FieldsFunc(pids, func(r rune) bool { return r == ',' }) {
		pid, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: -pids: %v\n", err)
			return 2
		}
		cfg.PIDs = append(cfg.PIDs, pid)
	}
	c, err := newClient()
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 2
	}
	users := userpb.NewUserService(handler.UserServiceName, c)
	r, err := loadgen.Run(context.Background(), users, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	if *asJSON {
		b, _ := json.Marshal(r)
		fmt.Println(string(b))
	} else {
		fmt.Printf("%s %s c=%d: %.0f req/s over %.1fs, p50 %.2fms p90 %.2fms p99 %.2fms max %.1fms, %d errors, server CPU %.0fµs/req, peak RSS %v MB\n",
			r.Label, r.Method, r.Concurrency, r.RPS, r.Seconds, r.P50, r.P90, r.P99, r.Max, r.Errors, r.CPUPerRequest, r.PeakRSSMB)
	}
	if r.Errors > 0 {
		fmt.Fprintf(os.Stderr, "loadgen: %d errors, the first: %s\n", r.Errors, r.FirstError)
	}
	return 0
}

// newClient is a client that finds the services in the registry the environment names and
// sends the bearer token of AUTH_TOKEN. It is untraced: the services' sampling decides what is
// traced.
func newClient() (client.Client, error) {
	reg, err := app.RegistryFromEnv()
	if err != nil {
		return nil, err
	}
	return guard.ClientWrapper(os.Getenv("AUTH_TOKEN"))(app.NewUntracedClient(reg)), nil
}

func report(file string) int {
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		return 1
	}
	defer f.Close()
	var results []loadgen.Result
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r loadgen.Result
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %s: %v\n", file, err)
			return 1
		}
		results = append(results, r)
	}
	loadgen.Report(os.Stdout, results, "none")
	return 0
}
