// Package proc reads what Linux says of a process in /proc: the supervisor's liveness checks,
// the benchmark's CPU and memory figures and the fault tests' memory samples.
package proc

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ClockTicks is USER_HZ, the unit of the times in /proc/PID/stat; 100 on every Linux this
// runs on.
const ClockTicks = 100

// Stat returns the fields of /proc/PID/stat that follow the command name, which is in
// parentheses and may hold anything: Stat(pid)[0] is the state, field 3 of proc(5).
func Stat(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	return strings.Fields(string(b[i+1:])), nil
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
