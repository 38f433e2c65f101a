package wrapper

import (
	"os/exec"
	"strings"
	"testing"
)

// The package is meant to be lifted into another go-micro service: nothing it or its tests
// build on may come from the rest of this module, whose test helpers alone link NATS, SQLite
// and PostgreSQL drivers.
func TestImportsNothingElseOfTheModule(t *testing.T) {
	// go test puts the go command that runs it first on the PATH.
	out, err := exec.Command("go", "list", "-deps", "-test",
		"-f", "{{.ImportPath}}|{{with .Module}}{{.Main}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	self, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .IgnoredGoFiles \" \"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkg, ignored, _ := strings.Cut(strings.TrimSpace(string(self)), "|")
	if ignored != "" {
		// Built with other tags, they could import anything: the list above would not show it.
		t.Errorf("%s has files this check does not see, left out by their build constraints: %s", pkg, ignored)
	}
	var found bool
	for line := range strings.Lines(string(out)) {
		path, main, _ := strings.Cut(strings.TrimSpace(line), "|")
		if main != "true" {
			continue
		}
		// The package, its test variant "pkg [pkg.test]", its external tests "pkg_test
		// [pkg.test]", and the test main "pkg.test".
		path, _, _ = strings.Cut(path, " ")
		path = strings.TrimSuffix(strings.TrimSuffix(path, ".test"), "_test")
		if path != pkg {
			t.Errorf("%s imports %s, of its own module", pkg, path)
			continue
		}
		found = true
	}
	if !found {
		t.Fatalf("go list did not list %s among its own dependencies:\n%s", pkg, out)
	}
}
