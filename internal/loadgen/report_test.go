package loadgen

import (
	"os"
	"strings"
	"testing"
)

func TestReportTakesMediansWithTheirSpreadAndComparesWithTheBaseline(t *testing.T) {
	results := []Result{
		{Label: "none", Method: GetUser, RPS: 1000, P99: 10, CPUPerRequest: 90, PeakRSSMB: []float64{40, 30}, Max: 20},
		{Label: "none", Method: GetUser, RPS: 1200, P99: 12, CPUPerRequest: 100, PeakRSSMB: []float64{41, 30}, Max: 25},
		{Label: "none", Method: GetUser, RPS: 5000, P99: 11, CPUPerRequest: 130, PeakRSSMB: []float64{40, 31}, Max: 21},
		{Label: "ours", Method: GetUser, RPS: 900, P99: 12.1, CPUPerRequest: 110, PeakRSSMB: []float64{45, 33}, Errors: 2},
	}
	var b strings.Builder
	Report(&b, results, "none")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", b.String())
	}
	for _, want := range []string{"| GetUser | none | 3 | 1200 (1000–5000) | +0.0% |", "| 11.00 (10.00–12.00) | +0.0% | 25.0 |",
		"| 100 (90–130) | +0.0% |", "40.0 (40.0–41.0) / 30.0 (30.0–31.0)"} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("baseline row %q lacks %q", lines[2], want)
		}
	}
	for _, want := range []string{"| ours | 1 | 900 | -25.0% |", "| 12.10 | +10.0% |", "| 2 | 110 | +10.0% |", "| 45.0 / 33.0 | +5.0 / +3.0 |"} {
		if !strings.Contains(lines[3], want) {
			t.Errorf("row %q lacks %q", lines[3], want)
		}
	}
}

func TestProcReadsThisProcess(t *testing.T) {
	pid := []int{os.Getpid()}
	if cpu, err := cpuSeconds(pid); err != nil || cpu < 0 {
		t.Errorf("cpuSeconds = %v, %v", cpu, err)
	}
	if rss, err := peakRSS(pid); err != nil || len(rss) != 1 || rss[0] <= 1 {
		t.Errorf("peakRSS = %v, %v", rss, err)
	}
}
