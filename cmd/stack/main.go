// Command stack runs the native stack (internal/stack): the real Consul, NATS server, Jaeger and
// OpenTelemetry Collector, and both services, as local processes on 127.0.0.1. make runs it
// for `make up`, `make down`, `make status`, `make logs` and `make demo` when no Docker engine
// answers.
//
//	stack up                start what is not running and wait until all of it is healthy
//	stack down              stop everything, services first
//	stack start NAME...     start these components if they do not run, and wait until healthy
//	stack stop NAME...      stop these components
//	stack status            each component, its pid and health
//	stack logs [NAME]       the last lines of every log, or follow one
//	stack env               the environment a client of the stack needs, one KEY=VALUE a line
//	stack exec CMD [ARG...] run CMD with that environment
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/go-micro-otel/reference/internal/stack"
)

const usage = `usage: stack up | down | start NAME... | stop NAME... | status | logs [NAME] | env | exec CMD [ARG...]
components: %s
`

func main() {
	err := run(os.Args[1:])
	switch {
	case errors.Is(err, errUsage):
		os.Exit(2)
	case err != nil:
		fmt.Fprintln(os.Stderr, "stack:", err)
		os.Exit(1)
	}
}

// errUsage is a command line run does not know; it has printed the usage.
var errUsage = errors.New("usage")

func run(args []string) error {
	st, err := stack.Open(".")
	if err != nil {
		return err
	}
	st.Out = os.Stdout
	if len(args) == 0 {
		fmt.Fprintf(os.Stderr, usage, strings.Join(st.Names(), " "))
		return errUsage
	}
	// Ctrl-C stops the wait; what has started keeps running, for `stack down`.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch cmd, names := args[0], args[1:]; {
	case cmd == "up" && len(names) == 0:
		if _, err := st.Up(ctx); err != nil {
			return err
		}
		fmt.Println("stack is up:")
		for _, c := range stack.Components() {
			for _, p := range c.Ports {
				if p.Published || c.Cmd != "" {
					fmt.Printf("  %-16s %-14s %s\n", p.Addr(), c.Name, p.What)
				}
			}
		}
		return nil
	case cmd == "down" && len(names) == 0:
		return st.Down(ctx)
	case cmd == "start" && len(names) > 0:
		_, err := st.Start(ctx, names...)
		return err
	case cmd == "stop" && len(names) > 0:
		return st.Stop(ctx, names...)
	case cmd == "status" && len(names) == 0:
		status(ctx, st)
		return nil
	case cmd == "logs" && len(names) == 0:
		for _, name := range st.Names() {
			if _, err := os.Stat(st.LogFile(name)); err == nil {
				fmt.Printf("== %s (%s)\n%s\n", name, rel(st.Root, st.LogFile(name)), stack.Tail(st.LogFile(name), 15))
			}
		}
		return nil
	case cmd == "logs" && len(names) == 1 && slices.Contains(st.Names(), names[0]):
		return execve([]string{"tail", "-n", "50", "-F", st.LogFile(names[0])}, os.Environ())
	case cmd == "env" && len(names) == 0:
		for _, kv := range st.ClientEnv() {
			fmt.Println(kv)
		}
		return nil
	case cmd == "exec" && len(names) > 0:
		return execve(names, append(os.Environ(), st.ClientEnv()...))
	}
	fmt.Fprintf(os.Stderr, usage, strings.Join(st.Names(), " "))
	return errUsage
}

func status(ctx context.Context, st *stack.Stack) {
	fmt.Printf("%-14s %-8s %-8s %s\n", "COMPONENT", "PID", "STATE", "HEALTH")
	for _, s := range st.Status(ctx) {
		pid, state, health := "-", "stopped", "-"
		if s.PID != 0 {
			pid, state, health = fmt.Sprint(s.PID), "running", "healthy"
			if s.Health != nil {
				health = "unhealthy: " + s.Health.Error()
			}
		}
		fmt.Printf("%-14s %-8s %-8s %s\n", s.Name, pid, state, health)
	}
}

// execve replaces this process with args[0], found on PATH, run with env.
func execve(args, env []string) error {
	bin, err := exec.LookPath(args[0])
	if err != nil {
		return err
	}
	return syscall.Exec(bin, args, env)
}

func rel(root, path string) string {
	if r, err := filepath.Rel(root, path); err == nil {
		return r
	}
	return path
}
