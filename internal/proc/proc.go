// Package proc reads what Linux says of a process in /proc: the supervisor's liveness checks,
// the benchmark's CPU and memory figures and the fault tests' memory samples; and it pins a
// process to cores, for the benchmark.
package proc

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ClockTicks is USER_HZ, the unit of the times in /proc/PID/stat; 100 on every Linux this
// runs on.
const ClockTicks = 100

// Stat returns the fields of /proc/PID/stat that follow the command name, which is in
// parentheses and may hold anything: Stat(pid)[0] is the state, field 3 of proc(5).
func Stat(pid int) ([]string, error) { return stat(fmt.Sprintf("/proc/%d/stat", pid)) }

// ThreadStat is Stat for the thread tid of process pid.
func ThreadStat(pid, tid int) ([]string, error) {
	return stat(fmt.Sprintf("/proc/%d/task/%d/stat", pid, tid))
}

func stat(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("%s: no command name", file)
	}
	return strings.Fields(string(b[i+1:])), nil
}

// CPUSeconds is the user plus system CPU time process pid has used so far.
func CPUSeconds(pid int) (float64, error) {
	fields, err := Stat(pid)
	if err != nil {
		return 0, err
	}
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	var total float64
	for _, f := range fields[11:13] { // utime, stime
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
		}
		total += v / ClockTicks
	}
	return total, nil
}

// StatusKB returns a line of /proc/PID/status measured in kB, such as VmRSS or VmHWM.
func StatusKB(pid int, key string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status %s: %w", pid, key, err)
			}
			return kb, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, key)
}

// Pin restricts every thread of process pid to the given cores. The Go runtime starts threads
// as it goes, each inheriting the mask of the thread that made it: a thread started while the
// threads are being listed could keep the old mask, so the listing is repeated until a pass
// finds none left to move.
func Pin(pid int, cores []int) error {
	var want unix.CPUSet
	for _, c := range cores {
		want.Set(c)
	}
	for range 10 {
		tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		if err != nil {
			return err
		}
		moved := 0
		for _, task := range tasks {
			tid, err := strconv.Atoi(task.Name())
			if err != nil {
				continue
			}
			var has unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &has); err != nil {
				continue // the thread has exited
			}
			if has == want {
				continue
			}
			if err := unix.SchedSetaffinity(tid, &want); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("pinning thread %d of %d: %w", tid, pid, err)
			}
			moved++
		}
		if moved == 0 {
			return nil
		}
	}
	return fmt.Errorf("pinning %d: its threads kept changing", pid)
}

// Cores lists the cores process pid's main thread may run on.
func Cores(pid int) ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(pid, &set); err != nil {
		return nil, err
	}
	var cores []int
	for c := range 8 * int(unsafe.Sizeof(set)) { // every core the set can name
		if set.IsSet(c) {
			cores = append(cores, c)
		}
	}
	return cores, nil
}
