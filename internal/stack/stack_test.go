package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-micro-otel/reference/internal/testenv"
)

// Run with STACK_FAKE set, the test binary is a stand-in component: it serves 200 on every
// port of FAKE_PORTS, and exits 0 on SIGTERM, or ignores it (STACK_FAKE=deaf), or exits at
// once with a message (STACK_FAKE=crash), or on SIGTERM ends only its main thread, the
// process's leader, while the others keep serving (STACK_FAKE=leader-exits): the state a
// process is in, briefly, while its threads exit one by one.
func TestMain(m *testing.M) {
	switch os.Getenv("STACK_FAKE") {
	case "":
		os.Exit(m.Run())
	case "crash":
		fmt.Println("fake: cannot open my database")
		os.Exit(3)
	}
	term := make(chan os.Signal, 1)
	if os.Getenv("STACK_FAKE") == "deaf" {
		signal.Ignore(syscall.SIGTERM)
	} else {
		signal.Notify(term, syscall.SIGTERM)
	}
	for _, p := range strings.Fields(os.Getenv("FAKE_PORTS")) {
		l, err := net.Listen("tcp", "127.0.0.1:"+p)
		if err != nil {
			fmt.Println("fake:", err)
			os.Exit(1)
		}
		go func() { _ = http.Serve(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }()
	}
	<-term
	if os.Getenv("STACK_FAKE") == "leader-exits" {
		// exit(2), not exit_group(2): the leader becomes a zombie, its threads and their
		// sockets live on.
		syscall.RawSyscall(syscall.SYS_EXIT, 0, 0, 0)
	}
	os.Exit(0)
}

// The leader-exits fake must end the main thread, on which the runtime runs main only when
// it is locked there before main starts.
func init() {
	if os.Getenv("STACK_FAKE") == "leader-exits" {
		runtime.LockOSThread()
	}
}

// fake is a component run by the test binary, serving on ports.
func fake(name, mode string, ports ...Port) Component {
	var numbers []string
	for _, p := range ports {
		numbers = append(numbers, strconv.Itoa(p.Number))
	}
	return Component{
		Name: name, Ports: ports,
		Launch: func(*Stack) Launch {
			return Launch{Env: []string{"STACK_FAKE=" + mode, "FAKE_PORTS=" + strings.Join(numbers, " ")}}
		},
		Health: httpOK(ports[0].URL("/")),
	}
}

func freePort(t *testing.T) Port { return Port{Number: testenv.FreePort(t)} }

// fakeStack is a stack of cs, run from a folder of the test's, as one invocation of the
// supervisor sees it; its progress goes to out.
func fakeStack(t *testing.T, run string, out *bytes.Buffer, cs ...Component) *Stack {
	t.Helper()
	s, err := New("../..")
	if err != nil {
		t.Fatal(err)
	}
	s.Run, s.Out, s.components = run, out, cs
	s.executable = func(context.Context, Component) (string, error) { return os.Args[0], nil }
	t.Cleanup(func() { _ = s.Down(context.Background()) })
	return s
}

func TestUpStartsInOrderWaitsAndLeavesWhatRunsAlone(t *testing.T) {
	run := t.TempDir()
	a, b := fake("a", "serve", freePort(t), freePort(t)), fake("b", "serve", freePort(t))
	b.Needs = []string{"a"}
	var out bytes.Buffer
	s := fakeStack(t, run, &out, a, b)
	started, err := s.Up(t.Context())
	if err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	if !slices.Equal(started, []string{"a", "b"}) {
		t.Errorf("up started %v, want a then b", started)
	}
	for _, p := range append(a.Ports, b.Ports...) {
		if _, err := get(t.Context(), p.URL("/"), ""); err != nil {
			t.Errorf("port %d: %v", p.Number, err)
		}
	}
	pids := s.PIDs()

	// Another invocation finds them by their pid files.
	var again bytes.Buffer
	s2 := fakeStack(t, run, &again, a, b)
	if started, err := s2.Up(t.Context()); err != nil || len(started) > 0 {
		t.Errorf("a second up started %v (%v)", started, err)
	}
	if !strings.Contains(again.String(), "a already running") || fmt.Sprint(s2.PIDs()) != fmt.Sprint(pids) {
		t.Errorf("second up: pids %v, then %v; said:\n%s", pids, s2.PIDs(), again.String())
	}
	for _, st := range s2.Status(t.Context()) {
		if st.PID != pids[st.Name] || st.Health != nil {
			t.Errorf("status of %s: pid %d (want %d), health %v", st.Name, st.PID, pids[st.Name], st.Health)
		}
	}

	if err := s2.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(again.String(), "b stopped"), strings.Index(again.String(), "a stopped"); i < 0 || j < i {
		t.Errorf("down stopped b then a? it said:\n%s", again.String())
	}
	for name, pid := range pids {
		if _, running := procStart(pid); running {
			t.Errorf("%s (pid %d) runs after down", name, pid)
		}
		if _, err := os.Stat(filepath.Join(run, name+".pid")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s.pid is left after down: %v", name, err)
		}
	}
	for _, p := range append(a.Ports, b.Ports...) {
		if held(p) {
			t.Errorf("port %d still held after down", p.Number)
		}
	}
}

func TestStartRefusesAPortAnotherProcessHolds(t *testing.T) {
	p := freePort(t)
	l, err := net.Listen("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out bytes.Buffer
	s := fakeStack(t, t.TempDir(), &out, fake("a", "serve", freePort(t), p))
	_, err = s.Up(t.Context())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d for a is held", p.Number)) {
		t.Errorf("up with a port held: %v", err)
	}
	if len(s.PIDs()) != 0 || strings.Contains(out.String(), "started") {
		t.Errorf("something started: %v\n%s", s.PIDs(), out.String())
	}
}

func TestAnEmptySecretStartsNothing(t *testing.T) {
	t.Setenv("FAKE_TOKEN", "")
	a, b := fake("a", "serve", freePort(t)), fake("b", "serve", freePort(t))
	b.Secrets = []string{"FAKE_TOKEN"}
	var out bytes.Buffer
	s := fakeStack(t, t.TempDir(), &out, a, b)
	if _, err := s.Up(t.Context()); err == nil || !strings.Contains(err.Error(), "FAKE_TOKEN is empty") {
		t.Errorf("up with FAKE_TOKEN empty: %v", err)
	}
	if len(s.PIDs()) != 0 {
		t.Errorf("started %v", s.PIDs())
	}
}

func TestAComponentThatExitsIsReportedWithItsLog(t *testing.T) {
	s := fakeStack(t, t.TempDir(), &bytes.Buffer{}, fake("a", "crash", freePort(t)))
	_, err := s.Up(t.Context())
	if err == nil || !strings.Contains(err.Error(), "a exited") || !strings.Contains(err.Error(), "fake: cannot open my database") {
		t.Errorf("up of a component that exits: %v", err)
	}
}

func TestStopKillsWhatIgnoresSIGTERMAfterItsGrace(t *testing.T) {
	a := fake("a", "deaf", freePort(t))
	a.StopGrace = 300 * time.Millisecond
	var out bytes.Buffer
	s := fakeStack(t, t.TempDir(), &out, a)
	if _, err := s.Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	pid := s.PIDs()["a"]
	if err := s.Stop(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	if _, running := procStart(pid); running || !strings.Contains(out.String(), "a did not stop within 300ms; killed it") {
		t.Errorf("pid %d running %v after stop; it said:\n%s", pid, running, out.String())
	}
}

// A process whose leader has exited still runs while any of its threads does, holding its
// ports: down waits for the last, and kills it after the grace.
func TestDownWaitsForEveryThreadNotOnlyTheLeader(t *testing.T) {
	run := t.TempDir()
	a := fake("a", "leader-exits", freePort(t))
	a.StopGrace = 300 * time.Millisecond
	var out bytes.Buffer
	if _, err := fakeStack(t, run, &out, a).Up(t.Context()); err != nil {
		t.Fatalf("up: %v\n%s", err, out.String())
	}
	// Another invocation, as `make down` is: the process is not its child.
	s := fakeStack(t, run, &out, a)
	if err := s.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "a did not stop within 300ms; killed it") {
		t.Errorf("down took the zombie leader for the process; it said:\n%s", out.String())
	}
	if held(a.Ports[0]) {
		t.Errorf("port %d still served after down", a.Ports[0].Number)
	}
}

// A pid file older than the process of its number names another process (the number was
// reused after a reboot): the stack neither counts nor signals it.
func TestAReusedPIDIsNotTheComponents(t *testing.T) {
	run := t.TempDir()
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	pidFile := filepath.Join(run, "a.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(other.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	hourAgo := time.Now().Add(-time.Hour)
	if err := os.Chtimes(pidFile, hourAgo, hourAgo); err != nil {
		t.Fatal(err)
	}
	s := fakeStack(t, run, &bytes.Buffer{}, fake("a", "serve", freePort(t)))
	if pids := s.PIDs(); len(pids) != 0 {
		t.Errorf("pids %v: the pid file's number was taken for the component", pids)
	}
	if err := s.Down(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, running := procStart(other.Process.Pid); !running {
		t.Error("down signalled a process the stack did not start")
	}
}

func TestSpawnRunsAnotherInstanceUntilStopped(t *testing.T) {
	a := fake("a", "serve", freePort(t))
	s := fakeStack(t, t.TempDir(), &bytes.Buffer{}, a)
	extra := freePort(t)
	// The later FAKE_PORTS wins, as the instance's own address does for a service.
	a.Health = httpOK(extra.URL("/"))
	s.components = []Component{a}
	log := filepath.Join(t.TempDir(), "extra.log")
	p, err := s.Spawn(t.Context(), "a", log, "FAKE_PORTS="+strconv.Itoa(extra.Number))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.PIDs()) != 0 {
		t.Errorf("the extra instance counts as the component: %v", s.PIDs())
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Errorf("stopped with %v, want exit 0", err)
	}
	if held(extra) {
		t.Error("the extra instance's port is still held")
	}
}

func TestSettingsShellOverLocalFileOverStackEnv(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "deploy"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(file, text string) {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "deploy", "stack.env"), "# defaults\nFROM_FILE=stack\nIN_BOTH=stack\nQUOTED=\"a b\"\nSHELL_EMPTY=stack\nSHELL_SET=stack\n")
	local := filepath.Join(root, "mine.env")
	write(local, "IN_BOTH=local\nONLY_LOCAL=local\n")
	t.Setenv("STACK_LOCAL_ENV", local)
	t.Setenv("SHELL_EMPTY", "")
	t.Setenv("SHELL_SET", "shell")
	s, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"FROM_FILE": "stack", "IN_BOTH": "local", "ONLY_LOCAL": "local", "QUOTED": "a b", "SHELL_EMPTY": "", "SHELL_SET": "shell"}
	for k, v := range want {
		if got := s.Setting(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
		if !slices.Contains(s.ClientEnv(), k+"="+v) {
			t.Errorf("the clients' environment lacks %s=%q", k, v)
		}
	}

	// Without STACK_LOCAL_ENV, deploy/.env is the local file.
	t.Setenv("STACK_LOCAL_ENV", "")
	write(filepath.Join(root, "deploy", ".env"), "IN_BOTH=dotenv\n")
	if s, err = New(root); err != nil || s.Setting("IN_BOTH") != "dotenv" {
		t.Errorf("IN_BOTH with deploy/.env: %q (%v)", s.Setting("IN_BOTH"), err)
	}
}

func TestComponentsStartAfterWhatTheyNeed(t *testing.T) {
	seen := map[string]bool{}
	ports := map[int]string{}
	for _, c := range Components() {
		if seen[c.Name] {
			t.Errorf("%s is declared twice", c.Name)
		}
		for _, need := range c.Needs {
			if !seen[need] {
				t.Errorf("%s needs %s, which up does not start before it", c.Name, need)
			}
		}
		seen[c.Name] = true
		if (c.Tool == "") == (c.Cmd == "") || c.Launch == nil || c.Health == nil || len(c.Ports) == 0 {
			t.Errorf("%s: want one of Tool and Cmd, a launch, a health check and its ports", c.Name)
		}
		for _, p := range c.Ports {
			if other, ok := ports[p.Number]; ok {
				t.Errorf("port %d is %s's and %s's", p.Number, other, c.Name)
			}
			ports[p.Number] = c.Name
		}
	}
}

// The README's port table is the one the components declare.
func TestREADMEPortTable(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "| port | component |")
	if i < 0 {
		t.Fatal("the README has no port table")
	}
	table := readme[i:]
	table = table[:strings.Index(table, "\n\n")+1]
	if table != portTable() {
		t.Errorf("the README's port table:\n%s\nwant (internal/stack/table.go):\n%s", table, portTable())
	}
}

// A component's files are written before it starts, readable by this user alone: secrets go
// there, not on a command line every local user can read.
func TestFilesAreWrittenForTheComponentAlone(t *testing.T) {
	run := t.TempDir()
	secret := filepath.Join(run, "a", "tokens.conf")
	if err := os.MkdirAll(filepath.Dir(secret), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("old"), 0o644); err != nil { // left by an earlier run
		t.Fatal(err)
	}
	a := fake("a", "serve", freePort(t))
	serve := a.Launch
	a.Launch = func(s *Stack) Launch {
		l := serve(s)
		l.Files = map[string]string{secret: "token = s3cret\n"}
		return l
	}
	if _, err := fakeStack(t, run, &bytes.Buffer{}, a).Up(t.Context()); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(secret)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "token = s3cret\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %q, mode %v; want the component's content, 0600", secret, b, fi.Mode().Perm())
	}
}

// portTable is the README's port table, in Markdown: every port of the components, then
// compose's own.
func portTable() string {
	var b strings.Builder
	b.WriteString("| port | component | what | under compose |\n| --- | --- | --- | --- |\n")
	row := func(component string, p Port, compose string) {
		fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", p.Number, component, p.What, compose)
	}
	for _, c := range Components() {
		for _, p := range c.Ports {
			switch {
			case c.Compose == "":
				row(c.Name, p, "not run")
			case p.Published:
				row(c.Name, p, "published")
			default:
				row(c.Name, p, "inside its network")
			}
		}
	}
	for _, svc := range slices.Sorted(maps.Keys(ComposeOnly)) {
		for _, p := range ComposeOnly[svc] {
			row(svc, p, "published; not run natively")
		}
	}
	return b.String()
}
