package failover

import (
	"fmt"
	"testing"
	"time"
)

// Nodes come and go: the failed ones are forgotten once their cooldown has passed, whether or
// not they are ever picked again.
func TestFailedNodesAreForgotten(t *testing.T) {
	f := New(5 * time.Second)
	start := time.Now()
	for i := range 1000 {
		f.markFailed(fmt.Sprintf("gone-%d", i), start)
	}
	f.markFailed("new", start.Add(6*time.Second))
	if n := len(f.failed); n != 1 {
		t.Errorf("%d nodes remembered, want only the one that failed within the cooldown", n)
	}
	if !f.avoided("new", start.Add(7*time.Second)) || f.avoided("new", start.Add(12*time.Second)) {
		t.Error("the new node is not avoided for exactly its cooldown")
	}
}
