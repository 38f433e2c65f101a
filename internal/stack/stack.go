// Package stack runs the stack as local processes on 127.0.0.1, for machines without a Docker
// engine: the real Consul, NATS server, Jaeger and OpenTelemetry Collector (built and pinned by
// deploy/native/build.sh), then user.service and order.service, with the configuration files,
// ports and settings of deploy/docker-compose.yaml. Every component is declared once, in
// Components: its command, ports, health check and what it needs. `make up/down/status/logs`
// (through cmd/stack), `make demo`, the benchmark and the e2e and fault tests all run it here.
//
// Pid files and logs live in run/ (STACK_RUN_DIR), so that one invocation stops what another
// started. Each component runs in a process group of its own; stopping it sends the group
// SIGTERM, then SIGKILL after its grace period.
package stack

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-micro-otel/reference/internal/poll"
)

const (
	// healthWait bounds the wait for a component to become healthy.
	healthWait = 2 * time.Minute
	// defaultGrace is how long a component has to exit after SIGTERM, unless it says otherwise.
	defaultGrace = 15 * time.Second
)

// Stack is the native stack of one checkout.
type Stack struct {
	Root string    // the checkout
	Run  string    // pid files, logs, data and the project's binaries
	Out  io.Writer // progress: what starts and stops, the servers' builds
	// BuildTags are the build tags of the project's commands (the benchmark's: plugintracing,pprof).
	BuildTags  string
	settings   settings
	components []Component
	// executable returns a component's binary: s.build, or in tests a stand-in.
	executable func(context.Context, Component) (string, error)
}

// New returns the stack of the checkout at root, with the settings of this process's
// environment. Its run folder is STACK_RUN_DIR, or run/ in the checkout.
func New(root string) (*Stack, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	set, err := loadSettings(root)
	if err != nil {
		return nil, err
	}
	s := &Stack{Root: root, Run: cmp.Or(os.Getenv("STACK_RUN_DIR"), filepath.Join(root, "run")), Out: io.Discard,
		settings: set, components: Components()}
	s.executable = s.build
	return s, nil
}

// Open returns the stack of the checkout that holds dir: the nearest folder at or above it
// with a deploy/stack.env.
func Open(dir string) (*Stack, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "deploy", "stack.env")); err == nil {
			return New(d)
		}
		if d == filepath.Dir(d) {
			return nil, fmt.Errorf("no checkout (a folder with deploy/stack.env) at or above %s", dir)
		}
	}
}

// Setting is the value of a setting as the stack's processes get it: the shell's, else the
// local file's, else deploy/stack.env's.
func (s *Stack) Setting(key string) string {
	if v, ok := s.settings[key]; ok {
		return v
	}
	return os.Getenv(key)
}

// Environ is the environment every component gets: this process's, with the settings.
func (s *Stack) Environ() []string { return append(os.Environ(), s.settings.env()...) }

// Names lists the components in the order of the table: the order up starts them in.
func (s *Stack) Names() []string {
	names := make([]string, len(s.components))
	for i, c := range s.components {
		names[i] = c.Name
	}
	return names
}

// Up starts every component but the optional ones that is not running, in order, and waits
// until each is healthy, those already running included. It returns the components it started.
func (s *Stack) Up(ctx context.Context) ([]string, error) {
	var names []string
	for _, c := range s.components {
		if !c.Optional {
			names = append(names, c.Name)
		}
	}
	return s.Start(ctx, names...)
}

// Down stops every component that runs, in the reverse order: the services first, so that
// they deregister from Consul.
func (s *Stack) Down(ctx context.Context) error { return s.Stop(ctx, s.Names()...) }

// Start starts the named components that are not running, in the order of the table, and
// waits until each is healthy. It starts them alone, as compose's --no-deps: what they need is
// up's to start. It refuses to start a component while another process holds one of its
// ports, since its health check would be answered by that process. It returns the components
// it started.
func (s *Stack) Start(ctx context.Context, names ...string) ([]string, error) {
	cs, err := s.pick(names)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		for _, key := range c.Secrets {
			if s.Setting(key) == "" {
				return nil, fmt.Errorf("%s is empty; %s needs it (deploy/stack.env has a local one)", key, c.Name)
			}
		}
	}
	unlock, err := s.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var started []string
	for _, c := range cs {
		l := c.Launch(s)
		if _, running := s.pid(c.Name); running {
			fmt.Fprintf(s.Out, "  %s already running\n", c.Name)
		} else {
			for _, p := range c.Ports {
				if held(p) {
					return started, fmt.Errorf("port %d for %s is held by a process this checkout did not start "+
						"(another checkout's stack? run its `make down`), so %s was not started", p.Number, c.Name, c.Name)
				}
			}
			proc, err := s.launch(ctx, c, l, s.LogFile(c.Name))
			if err != nil {
				return started, err
			}
			pid := proc.PID()
			if err := os.WriteFile(s.pidFile(c.Name), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
				_ = proc.Stop(grace(c))
				return started, err
			}
			started = append(started, c.Name)
			fmt.Fprintf(s.Out, "  %s started (pid %d)\n", c.Name, pid)
		}
		alive := func() bool { _, ok := s.pid(c.Name); return ok }
		if err := s.waitHealthy(ctx, c, l, alive, s.LogFile(c.Name)); err != nil {
			return started, err
		}
	}
	return started, nil
}

// Stop stops the named components that run, those that need others first.
func (s *Stack) Stop(ctx context.Context, names ...string) error {
	cs, err := s.pick(names)
	if err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	slices.Reverse(cs)
	var errs []error
	for _, c := range cs {
		pid, running := s.pid(c.Name)
		if !running {
			if err := os.Remove(s.pidFile(c.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
			continue
		}
		killed, err := terminate(ctx, pid, grace(c), func() bool { _, ok := s.pid(c.Name); return !ok })
		if err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", c.Name, err))
			continue
		}
		if killed {
			fmt.Fprintf(s.Out, "  %s did not stop within %s; killed it\n", c.Name, grace(c))
		}
		if err := os.Remove(s.pidFile(c.Name)); err != nil {
			errs = append(errs, err)
		}
		fmt.Fprintf(s.Out, "  %s stopped\n", c.Name)
	}
	return errors.Join(errs...)
}

// State is what Status found of one component.
type State struct {
	Name   string
	PID    int   // 0 when it does not run
	Health error // nil when it runs and is healthy
}

// Status says, for each component, whether it runs and whether it is healthy.
func (s *Stack) Status(ctx context.Context) []State {
	out := make([]State, 0, len(s.components))
	for _, c := range s.components {
		st := State{Name: c.Name, Health: errors.New("not running")}
		if pid, ok := s.pid(c.Name); ok {
			st.PID, st.Health = pid, c.Health(ctx, s, c.Launch(s))
		}
		out = append(out, st)
	}
	return out
}

// PIDs returns the pid of each component that runs, by name.
func (s *Stack) PIDs() map[string]int {
	pids := map[string]int{}
	for _, c := range s.components {
		if pid, ok := s.pid(c.Name); ok {
			pids[c.Name] = pid
		}
	}
	return pids
}

// Spawn runs another instance of the component name beside the stack's, with env over its
// own (another MICRO_SERVER_ADDRESS, another registry...) and its output in logFile, and waits
// until it is healthy. It writes no pid file: the caller stops it.
func (s *Stack) Spawn(ctx context.Context, name, logFile string, env ...string) (*Process, error) {
	c, err := s.component(name)
	if err != nil {
		return nil, err
	}
	l := c.Launch(s)
	l.Env = append(l.Env, env...)
	p, err := s.launch(ctx, c, l, logFile)
	if err != nil {
		return nil, err
	}
	if err := s.waitHealthy(ctx, c, l, func() bool { return !p.Exited() }, logFile); err != nil {
		return nil, errors.Join(err, p.Stop(grace(c)))
	}
	return p, nil
}

// LogFile is the log of the component name.
func (s *Stack) LogFile(name string) string { return filepath.Join(s.Run, name+".log") }

func (s *Stack) pidFile(name string) string { return filepath.Join(s.Run, name+".pid") }

// deploy is a file of deploy/.
func (s *Stack) deploy(file string) string { return filepath.Join(s.Root, "deploy", file) }

// command is where a command of this module is built: run/bin.
func (s *Stack) command(pkg string) string { return filepath.Join(s.Run, "bin", filepath.Base(pkg)) }

func (s *Stack) component(name string) (Component, error) {
	for _, c := range s.components {
		if c.Name == name {
			return c, nil
		}
	}
	return Component{}, fmt.Errorf("no component %q (the stack has %s)", name, strings.Join(s.Names(), ", "))
}

// pick returns the named components in the order of the table.
func (s *Stack) pick(names []string) ([]Component, error) {
	for _, name := range names {
		if _, err := s.component(name); err != nil {
			return nil, err
		}
	}
	var cs []Component
	for _, c := range s.components {
		if slices.Contains(names, c.Name) {
			cs = append(cs, c)
		}
	}
	return cs, nil
}

// build returns the component's binary: the pinned server build.sh builds (once, into its
// cache), or the command of this module, built into run/bin.
func (s *Stack) build(ctx context.Context, c Component) (string, error) {
	if c.Tool != "" {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, s.deploy("native/build.sh"), "path", c.Tool)
		cmd.Stdout, cmd.Stderr = &out, s.Out // the build's progress
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("building %s: %w", c.Tool, err)
		}
		return strings.TrimSpace(out.String()), nil
	}
	// -buildvcs=auto, whatever GOFLAGS says: the go command stamps the commit into the binary
	// where it can, which the services report as service.version.
	args := []string{"build", "-buildvcs=auto", "-o", filepath.Join(s.Run, "bin") + "/"}
	if s.BuildTags != "" {
		args = append(args, "-tags", s.BuildTags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, c.Cmd)...)
	cmd.Dir = s.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", c.Cmd, err, out)
	}
	return s.command(c.Cmd), nil
}

// launch starts the component as l says, in a process group of its own, its output in
// logFile.
func (s *Stack) launch(ctx context.Context, c Component, l Launch, logFile string) (*Process, error) {
	for _, dir := range []string{filepath.Join(s.Run, "data"), filepath.Join(s.Run, "bin"), filepath.Dir(logFile)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	for file, content := range l.Files {
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			return nil, err
		}
		if err := os.Chmod(file, 0o600); err != nil { // a file written before keeps its mode
			return nil, err
		}
	}
	bin, err := s.executable(ctx, c)
	if err != nil {
		return nil, err
	}
	log, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer log.Close() // the process has its own copy
	// Not bound to ctx: it outlives this call.
	cmd := exec.Command(bin, l.Args...)
	cmd.Dir = s.Root
	cmd.Env = append(s.Environ(), l.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	// A group of its own: a Ctrl-C of `make up` does not reach it, and a stop reaches whatever
	// it starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", c.Name, err)
	}
	return watch(cmd), nil
}

// waitHealthy polls the component's health until it passes, it exits, or healthWait runs out.
func (s *Stack) waitHealthy(ctx context.Context, c Component, l Launch, alive func() bool, logFile string) error {
	ctx, cancel := context.WithTimeout(ctx, healthWait)
	defer cancel()
	errExited := fmt.Errorf("%s exited", c.Name)
	err := poll.Until(ctx, healthWait, func() error {
		err := c.Health(ctx, s, l)
		if err != nil && !alive() {
			return poll.Stop(errExited)
		}
		return err
	})
	switch {
	case errors.Is(err, errExited):
		return fmt.Errorf("%w; the end of %s:\n%s", err, logFile, Tail(logFile, 20))
	case err != nil:
		return fmt.Errorf("%s not healthy after %s: %w; see %s", c.Name, healthWait, err, logFile)
	}
	return nil
}

// lock serialises the starts and stops of one run folder, across processes.
func (s *Stack) lock() (func(), error) {
	if err := os.MkdirAll(s.Run, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.Run, ".stack.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

// held reports whether another process listens on the port on 127.0.0.1.
func held(p Port) bool {
	c, err := net.DialTimeout("tcp", p.Addr(), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func grace(c Component) time.Duration { return cmp.Or(c.StopGrace, defaultGrace) }

// Tail returns the last n lines of a file, or why it cannot.
func Tail(file string, n int) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
