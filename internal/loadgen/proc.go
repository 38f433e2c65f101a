package loadgen

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc/PID/stat times; 100 on every Linux this runs on.
const clockTicks = 100

// cpuSeconds is the user plus system CPU time the processes have used so far.
func cpuSeconds(pids []int) (float64, error) {
	var total float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("loadgen: cpu of pid %d: %w", pid, err)
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		fields := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(fields) < 13 {
			return 0, fmt.Errorf("loadgen: /proc/%d/stat: %d fields", pid, len(fields))
		}
		for _, f := range fields[11:13] { // utime, stime
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return 0, fmt.Errorf("loadgen: /proc/%d/stat: %w", pid, err)
			}
			total += v / clockTicks
		}
	}
	return total, nil
}

// peakRSS is each process's peak resident memory (VmHWM) in MB.
func peakRSS(pids []int) ([]float64, error) {
	out := make([]float64, 0, len(pids))
	for _, pid := range pids {
		f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return nil, fmt.Errorf("loadgen: memory of pid %d: %w", pid, err)
		}
		sc := bufio.NewScanner(f)
		kb := -1.0
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
				kb, err = strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
				if err != nil {
					kb = -1
				}
			}
		}
		f.Close()
		if kb < 0 {
			return nil, fmt.Errorf("loadgen: no VmHWM for pid %d", pid)
		}
		out = append(out, kb/1024)
	}
	return out, nil
}
