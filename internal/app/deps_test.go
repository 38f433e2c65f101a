package app_test

import (
	"go/ast"
	"go/parser"
	"go/token"
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

// go-micro errors arrive in several forms (wrapper.ErrorOf says which); a package that read
// them another way would decide differently about the same error. Only the wrapper's own code
// calls go-micro's FromError or Parse.
func TestGoMicroErrorsAreReadInOnePlace(t *testing.T) {
	if testing.Short() {
		t.Skip("asks the go command")
	}
	out, err := exec.Command("go", "list", "-tags", "plugintracing,pprof,e2e",
		"-f", `{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}} {{end}}`, "../../...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	files := strings.Fields(string(out))
	if len(files) < 50 {
		t.Fatalf("go list found %d files of the module", len(files))
	}
	for _, file := range files {
		if strings.Contains(file, "/internal/wrapper/") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		name := ""
		for _, imp := range f.Imports {
			if imp.Path.Value == `"go-micro.dev/v4/errors"` {
				name = "errors"
				if imp.Name != nil {
					name = imp.Name.Name
				}
			}
		}
		if name == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == name && (sel.Sel.Name == "FromError" || sel.Sel.Name == "Parse") {
					t.Errorf("%s reads a go-micro error with %s.%s; use wrapper.ErrorOf", file, name, sel.Sel.Name)
				}
			}
			return true
		})
	}
}
