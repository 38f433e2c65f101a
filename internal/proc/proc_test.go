package proc

import (
	"os"
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
}
