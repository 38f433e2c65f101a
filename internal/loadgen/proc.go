package loadgen

import (
	"fmt"

	"github.com/go-micro-otel/reference/internal/proc"
)

// cpuSeconds is the user plus system CPU time the processes have used so far.
func cpuSeconds(pids []int) (float64, error) {
	var total float64
	for _, pid := range pids {
		s, err := proc.CPUSeconds(pid)
		if err != nil {
			return 0, fmt.Errorf("loadgen: cpu of pid %d: %w", pid, err)
		}
		total += s
	}
	return total, nil
}

// peakRSS is each process's peak resident memory (VmHWM) in MB.
func peakRSS(pids []int) ([]float64, error) {
	out := make([]float64, 0, len(pids))
	for _, pid := range pids {
		kb, err := proc.StatusKB(pid, "VmHWM")
		if err != nil {
			return nil, fmt.Errorf("loadgen: memory of pid %d: %w", pid, err)
		}
		out = append(out, kb/1024)
	}
	return out, nil
}
