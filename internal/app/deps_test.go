package app_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The services' binaries do not link the go-micro plugin's wrapper, which only the benchmarks
// compare against, unless built for that (-tags plugintracing). Nor does the project's code
// import net/http/pprof, which would serve profiles on http.DefaultServeMux, unless built with
// -tags pprof. (go-micro itself links the package, in go-micro.dev/v4/debug/profile/http, and
// starts it only when its command line is parsed, which the services never do.)
func TestProductionBinariesLinkNoBenchmarkTooling(t *testing.T) {
	if testing.Short() {
		t.Skip("asks the go command")
	}
	const plugin, pprof = "github.com/go-micro/plugins/v4/wrapper/trace/opentelemetry", "net/http/pprof"
	list := func(tags, format string) []string {
		t.Helper()
		out, err := exec.Command("go", "list", "-tags", tags, "-deps", "-f", format,
			"../../cmd/user-service", "../../cmd/order-service").CombinedOutput()
		if err != nil {
			t.Fatalf("go list: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	// Every package linked, and every package of this module's imports.
	const linked = "{{.ImportPath}}"
	const ownImports = `{{if not .Standard}}{{if eq .Module.Path "github.com/go-micro-otel/reference"}}{{join .Imports " "}}{{end}}{{end}}`
	if slices.Contains(list("", linked), plugin) {
		t.Errorf("the services' binaries link %s", plugin)
	}
	if slices.Contains(list("", ownImports), pprof) {
		t.Errorf("the project's code imports %s", pprof)
	}
	if !slices.Contains(list("plugintracing", linked), plugin) || !slices.Contains(list("pprof", ownImports), pprof) {
		t.Errorf("built with -tags plugintracing,pprof, the binaries do not link the plugin or pprof")
	}
}
