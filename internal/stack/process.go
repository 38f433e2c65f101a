package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-micro-otel/reference/internal/poll"
	"github.com/go-micro-otel/reference/internal/proc"
)

// Process is a component's process started by this program.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and been reaped
	err  error         // its exit, once done
}

// watch reaps cmd when it exits, so that it never lingers as a zombie that looks alive.
func watch(cmd *exec.Cmd) *Process {
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p
}

// PID is its process id, and its process group's.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits until it has exited and returns how: nil for exit status 0.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Exited reports whether it has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends its process group SIGTERM, then SIGKILL if it has not exited within grace, and
// returns how it exited; nil if it had already exited.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	if _, err := terminate(context.Background(), p.PID(), grace, p.Exited); err != nil {
		return err
	}
	return p.Wait()
}

// terminate sends the process group of pid SIGTERM, waits up to grace until gone says it has
// exited, then sends SIGKILL and waits again. It reports whether it had to kill.
func terminate(ctx context.Context, pid int, grace time.Duration, gone func() bool) (killed bool, err error) {
	if err := signalGroup(pid, syscall.SIGTERM); err != nil {
		return false, err
	}
	if waitUntil(ctx, grace, gone) {
		return false, nil
	}
	if err := signalGroup(pid, syscall.SIGKILL); err != nil {
		return true, err
	}
	if !waitUntil(ctx, 10*time.Second, gone) {
		return true, fmt.Errorf("pid %d still runs after SIGKILL", pid)
	}
	return true, nil
}

// signalGroup signals the process group that pid leads; pid alone if it leads none (a process
// started by an earlier version of the stack).
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		err = syscall.Kill(pid, sig)
	}
	if errors.Is(err, syscall.ESRCH) {
		return nil // gone meanwhile
	}
	return err
}

// waitUntil asks cond until it holds (true) or d has passed (false).
func waitUntil(ctx context.Context, d time.Duration, cond func() bool) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := poll.Until(ctx, d, func() error {
		if cond() {
			return nil
		}
		return errStillRuns
	})
	return err == nil || cond()
}

var errStillRuns = errors.New("still runs")

// pid returns the pid of the component name from its pid file, if that process still runs.
// A process is taken for the component only if it started before the pid file was written:
// after a reboot the number may belong to another process, which must not be signalled.
func (s *Stack) pid(name string) (int, bool) {
	f := s.pidFile(name)
	b, err := os.ReadFile(f)
	if err != nil {
		return 0, false
	}
	fi, err := os.Stat(f)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	started, running := procStart(pid)
	// Clock ticks and the boot time's whole seconds make the start time a little uncertain.
	if !running || started.After(fi.ModTime().Add(2*time.Second)) {
		return 0, false
	}
	return pid, true
}

// procStart returns when pid started, and whether it runs. A zombie, exited but not yet
// reaped, does not, unless it is a leader whose other threads still run: the state shows the
// leader's thread alone, and the others hold the process's files and sockets until the last
// has exited.
func procStart(pid int) (time.Time, bool) {
	fields, err := proc.Stat(pid)
	if err != nil || len(fields) < 20 || (exited(fields[0]) && !threadsRun(pid)) {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseInt(fields[19], 10, 64) // starttime, in clock ticks after boot
	boot, bootErr := bootTime()
	if err != nil || bootErr != nil {
		return time.Time{}, false
	}
	return boot.Add(time.Duration(ticks) * time.Second / proc.ClockTicks), true
}

func exited(state string) bool { return state == "Z" || state == "X" }

// threadsRun reports whether any thread of pid's group other than its leader has not exited.
func threadsRun(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil || tid == pid {
			continue
		}
		if fields, err := proc.ThreadStat(pid, tid); err == nil && len(fields) > 0 && !exited(fields[0]) {
			return true
		}
	}
	return false
}

// bootTime is when the machine booted, from /proc/stat.
var bootTime = sync.OnceValues(func() (time.Time, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("/proc/stat btime: %w", err)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, errors.New("/proc/stat has no btime")
})
