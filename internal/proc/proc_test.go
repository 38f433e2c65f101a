package proc

import (
	"os"
	"slices"
	"strconv"
	"testing"
)

func TestReadsThisProcess(t *testing.T) {
	fields, err := Stat(os.Getpid())
	// The state is the main thread's: running, or sleeping while another thread runs this test.
	if err != nil || len(fields) < 20 || (fields[0] != "R" && fields[0] != "S") {
		t.Fatalf("Stat = %v, %v; want this process running", fields, err)
	}
	if ppid, err := strconv.Atoi(fields[1]); err != nil || ppid != os.Getppid() {
		t.Errorf("field 4, the parent, = %q; want %d", fields[1], os.Getppid())
	}
	if rss, err := StatusKB(os.Getpid(), "VmRSS"); err != nil || rss < 1024 {
		t.Errorf("VmRSS = %v kB, %v", rss, err)
	}
	if _, err := StatusKB(os.Getpid(), "NoSuchLine"); err == nil {
		t.Error("a line /proc/PID/status lacks was found")
	}
	if _, err := Stat(-1); err == nil {
		t.Error("the stat of no process was read")
	}
	// CPU time grows with work done: spin until a clock tick has been counted.
	before, err := CPUSeconds(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for after := before; after <= before; {
		for i := range 1_000_000 {
			spin += i
		}
		if after, err = CPUSeconds(os.Getpid()); err != nil {
			t.Fatal(err)
		}
	}
}

var spin int

// Pinning moves every thread of a process, the Go runtime's too, and can be undone.
func TestPinMovesEveryThread(t *testing.T) {
	all, err := Cores(os.Getpid())
	if err != nil || len(all) == 0 {
		t.Fatalf("Cores = %v, %v", all, err)
	}
	t.Cleanup(func() {
		if err := Pin(os.Getpid(), all); err != nil {
			t.Errorf("restoring the cores: %v", err)
		}
	})
	last := all[len(all)-1:]
	if err := Pin(os.Getpid(), last); err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil || len(tasks) < 2 {
		t.Fatalf("threads: %d, %v; a Go test has several", len(tasks), err)
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		if got, err := Cores(tid); err == nil && !slices.Equal(got, last) {
			t.Errorf("thread %d runs on %v, want %v", tid, got, last)
		}
	}
	if err := Pin(-1, last); err == nil {
		t.Error("no process was pinned without an error")
	}
}
