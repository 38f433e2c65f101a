package main

import "testing"

// A BENCH_* setting that does not parse stops the run before it starts anything: taking the
// default instead would report a closed loop as the paced run that was asked for.
func TestABenchSettingThatDoesNotParseStopsTheRun(t *testing.T) {
	for key, value := range map[string]string{"BENCH_GET_RATE": "6OO", "BENCH_ROUNDS": "five", "BENCH_GET": "10"} {
		t.Run(key, func(t *testing.T) {
			t.Setenv(key, value)
			if got := bench([]string{"-smoke"}); got != 2 {
				t.Errorf("%s=%s: bench returned %d, want 2", key, value, got)
			}
		})
	}
}
