// Package deploy_test keeps the three ways of running the stack in step: docker compose, the
// native processes of internal/stack (whose table it reads), and the Kubernetes manifests. It is a module of its own
// so that the compose loader's dependencies stay out of the services' go.mod.
package deploy_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"gopkg.in/yaml.v3"

	"github.com/go-micro-otel/reference/internal/stack"
)

// loadCompose loads the compose file as `make demo` has docker compose load it, in a shell that
// sets none of the stack's variables.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	return loadComposeIn(t, nil)
}

// loadComposeIn loads it in a shell that sets env and none of the stack's other variables.
func loadComposeIn(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	inShell(t, env)
	p, err := loadLikeCLI(subcommand(t, makeCompose(t, "up"), "up"), "demo")
	if err != nil {
		t.Fatalf("docker-compose.yaml does not load: %v", err)
	}
	return p
}

// The compose loader is the one `docker compose config` uses; where the real CLI is installed
// it is asked too.
func TestComposeFileIsValid(t *testing.T) {
	p := loadCompose(t)
	var names []string
	for name := range p.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	want := "consul jaeger nats order-service otel-collector otelcol-queue-owner prometheus user-client user-service"
	if strings.Join(names, " ") != want {
		t.Errorf("services %v, want %s", names, want)
	}
	for name, s := range p.Services {
		if s.Image == "" || !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q is not pinned", name, s.Image)
		}
	}
	for _, svc := range []string{"user-service", "order-service"} {
		for dep, cond := range map[string]string{"consul": "service_healthy", "nats": "service_healthy"} {
			if got := p.Services[svc].DependsOn[dep].Condition; got != cond {
				t.Errorf("%s depends on %s with %q, want %q", svc, dep, got, cond)
			}
		}
		if p.Services[svc].HealthCheck == nil {
			t.Errorf("%s has no health check", svc)
		}
	}
	requireComposeCLI(t)
	if out, err := exec.Command("docker", "compose", "-f", "docker-compose.yaml", "--env-file", "stack.env", "--profile", "demo", "config", "-q").CombinedOutput(); err != nil {
		t.Errorf("docker compose config: %v\n%s", err, out)
	}
}

// Both stacks run the same configuration files and give them the same variables.
func TestComposeAndNativeRunTheSameConfiguration(t *testing.T) {
	p := loadCompose(t)
	t.Setenv("TAIL_SAMPLING_PERCENT", "10") // the collector runs otel-tail-sampling.yaml too
	st := nativeStack(t)
	for _, run := range []struct{ svc, file string }{
		{"otel-collector", "otel-config.yaml"}, {"otel-collector", "otel-tail-sampling.yaml"}, {"jaeger", "jaeger-config.yaml"},
	} {
		svc, file := run.svc, run.file
		mounted := false
		for _, v := range p.Services[svc].Volumes {
			mounted = mounted || strings.HasSuffix(v.Source, "/"+file)
		}
		if !mounted {
			t.Errorf("compose %s does not mount %s", svc, file)
		}
		native := nativeComponent(t, svc).Launch(st)
		if !slices.Contains(native.Args, filepath.Join(st.Root, "deploy", file)) {
			t.Errorf("the native %s runs %v, not deploy/%s", svc, native.Args, file)
		}
		env := parseEnv(t, strings.Join(native.Env, "\n"))
		for _, name := range envRefs(t, file) {
			if _, ok := p.Services[svc].Environment[name]; !ok {
				t.Errorf("%s reads ${env:%s}; compose %s does not set it", file, name, svc)
			}
			if _, ok := env[name]; !ok {
				t.Errorf("%s reads ${env:%s}; the native %s does not get it", file, name, svc)
			}
		}
	}

	native := nativeEnv(t)
	for _, svc := range []string{"user-service", "order-service", "user-client"} {
		for name, value := range received(p.Services[svc]) {
			switch name {
			case "MICRO_SERVER_ADDRESS", "DATA_DIR", "JAEGER_QUERY_URL":
				continue // set per process, checked below where it matters
			}
			nv, ok := native[name]
			if !ok {
				t.Errorf("compose %s sets %s; the native stack does not", svc, name)
				continue
			}
			if hostless(nv) != hostless(value) {
				t.Errorf("%s: compose %q, native %q", name, value, nv)
			}
		}
	}
	for svc, port := range servicePorts(t, p) {
		env := parseEnv(t, strings.Join(nativeComponent(t, svc).Launch(st).Env, "\n"))
		if env["MICRO_SERVER_ADDRESS"] != "127.0.0.1:"+port {
			t.Errorf("compose %s listens on %s; the native one on %s", svc, port, env["MICRO_SERVER_ADDRESS"])
		}
	}
}

// Both stacks start the same components after the same others, and give the services the same
// time to stop.
func TestComposeAndNativeStartInTheSameOrder(t *testing.T) {
	p := loadCompose(t)
	native := map[string]bool{}        // compose's services that run natively too
	composeName := map[string]string{} // by native name
	for _, c := range stack.Components() {
		native[c.Compose] = c.Compose != ""
		composeName[c.Name] = c.Compose
	}
	for _, c := range stack.Components() {
		if c.Compose == "" {
			continue
		}
		s, ok := p.Services[c.Compose]
		if !ok {
			t.Errorf("compose has no %s", c.Compose)
			continue
		}
		var needs []string
		for _, need := range c.Needs {
			needs = append(needs, composeName[need])
		}
		var deps []string // the collector's queue-owner, a one-shot chown, has no native counterpart
		for dep := range s.DependsOn {
			if native[dep] {
				deps = append(deps, dep)
			}
		}
		slices.Sort(needs)
		slices.Sort(deps)
		if !slices.Equal(needs, deps) {
			t.Errorf("compose %s depends on %v; natively it needs %v", c.Compose, deps, needs)
		}
		if s.StopGracePeriod != nil && time.Duration(*s.StopGracePeriod) != c.StopGrace {
			t.Errorf("compose gives %s %s to stop, the native stack %s", c.Compose, time.Duration(*s.StopGracePeriod), c.StopGrace)
		}
	}
}

// Tail sampling is opt-in: the collector runs otel-tail-sampling.yaml over its configuration
// only when TAIL_SAMPLING_PERCENT is set, in compose as natively.
func TestTailSamplingRunsOnlyWhenAskedFor(t *testing.T) {
	if got := strings.Join(loadCompose(t).Services["otel-collector"].Command, " "); got != "--config=/etc/otelcol/config.yaml" {
		t.Errorf("without TAIL_SAMPLING_PERCENT the collector runs %q, want its configuration alone", got)
	}
	config := filepath.Join(nativeStack(t).Root, "deploy", "otel-config.yaml")
	if got := nativeComponent(t, "otel-collector").Launch(nativeStack(t)).Args; !slices.Equal(got, []string{"--config", config}) {
		t.Errorf("without TAIL_SAMPLING_PERCENT the native collector runs %q, want its configuration alone", got)
	}
	p := loadComposeIn(t, map[string]string{"TAIL_SAMPLING_PERCENT": "10"})
	cmd := p.Services["otel-collector"].Command
	if len(cmd) != 2 || cmd[1] != "--config=/etc/otelcol/tail-sampling.yaml" || mountedFrom(p.Services["otel-collector"], "/etc/otelcol/tail-sampling.yaml") != "otel-tail-sampling.yaml" {
		t.Errorf("with TAIL_SAMPLING_PERCENT=10 the collector runs %q, want the tail-sampling overlay too", cmd)
	}
	overlay := filepath.Join(filepath.Dir(config), "otel-tail-sampling.yaml")
	if got := nativeComponent(t, "otel-collector").Launch(nativeStack(t)).Args; !slices.Equal(got, []string{"--config", config, "--config", overlay}) {
		t.Errorf("with TAIL_SAMPLING_PERCENT=10 the native collector runs %q, want the tail-sampling overlay too", got)
	}
}

// Jaeger and the collector listen where their configuration files say, which both stacks
// share: those ports are the ones the native stack declares, and checks are free before it
// starts them.
func TestConfigurationFilesBindTheDeclaredPorts(t *testing.T) {
	for file, svc := range map[string]string{"otel-config.yaml": "otel-collector", "jaeger-config.yaml": "jaeger"} {
		var bound []int
		// A listening endpoint is ${env:..._LISTEN_HOST:-127.0.0.1}:PORT, or host and port: PORT.
		for _, m := range regexp.MustCompile(`(?m)_LISTEN_HOST:-127\.0\.0\.1\}:(\d+)|^\s*port: (\d+)$`).FindAllStringSubmatch(read(t, file), -1) {
			n, err := strconv.Atoi(m[1] + m[2])
			if err != nil {
				t.Fatal(err)
			}
			bound = append(bound, n)
		}
		var declared []int
		for _, p := range nativeComponent(t, svc).Ports {
			declared = append(declared, p.Number)
		}
		slices.Sort(bound)
		slices.Sort(declared)
		if !slices.Equal(bound, declared) {
			t.Errorf("%s binds %v; internal/stack declares %v for %s", file, bound, declared, svc)
		}
	}
}

// credentials are the settings of stack.env that are secrets: Kubernetes takes them from a
// Secret, never from the ConfigMap.
var credentials = []string{"CONSUL_HTTP_TOKEN", "NATS_TOKEN", "AUTH_TOKEN"}

// Consul and NATS demand the stack's tokens in both stacks, the services demand AUTH_TOKEN, and
// the services and every client of both stacks get all three.
func TestBothStacksRunConsulAndNATSWithTheirTokens(t *testing.T) {
	p := loadCompose(t)
	env := parseEnvFile(t, "stack.env")
	st := nativeStack(t)
	for _, name := range credentials {
		if env[name] == "" {
			t.Fatalf("stack.env has no %s", name)
		}
	}
	consul := strings.Join(p.Services["consul"].Command, " ")
	if !strings.Contains(consul, "/etc/consul/acl.hcl") || !strings.Contains(consul, `initial_management = "`+env["CONSUL_HTTP_TOKEN"]+`"`) {
		t.Errorf("compose consul does not enable ACLs with the stack's token: %s", consul)
	}
	// Natively, no token is on a server's command line, which every local user can read.
	consulLaunch := nativeComponent(t, "consul").Launch(st)
	native := strings.Join(consulLaunch.Args, " ")
	tokens := filepath.Join(st.Run, "consul", "tokens.hcl")
	if !strings.Contains(native, "-config-file "+filepath.Join(st.Root, "deploy", "consul-acl.hcl")) || !strings.Contains(native, "-config-file "+tokens) ||
		!strings.Contains(consulLaunch.Files[tokens], `initial_management = "`+env["CONSUL_HTTP_TOKEN"]+`"`) || strings.Contains(native, env["CONSUL_HTTP_TOKEN"]) {
		t.Errorf("the native Consul does not enable ACLs with the stack's token from a file: %s %v", native, consulLaunch.Files)
	}
	nats := p.Services["nats"]
	if cmd := strings.Join(nats.Command, " "); !strings.Contains(cmd, "-js") || !strings.Contains(cmd, "-c /etc/nats/nats.conf") ||
		strings.Contains(cmd, env["NATS_TOKEN"]) || received(nats)["NATS_TOKEN"] != env["NATS_TOKEN"] {
		t.Errorf("compose nats runs without JetStream, nats.conf or the token in its environment: %s", cmd)
	}
	natsLaunch := nativeComponent(t, "nats").Launch(st)
	if native := strings.Join(natsLaunch.Args, " "); !strings.Contains(native, "-js") || !strings.Contains(native, "-c "+filepath.Join(st.Root, "deploy", "nats.conf")) ||
		strings.Contains(native, env["NATS_TOKEN"]) || parseEnv(t, strings.Join(natsLaunch.Env, "\n"))["NATS_TOKEN"] != env["NATS_TOKEN"] {
		t.Errorf("the native NATS runs without JetStream, nats.conf or the token in its environment: %s", native)
	}
	if conf := read(t, "nats.conf"); !strings.Contains(conf, "token: $NATS_TOKEN") {
		t.Errorf("nats.conf does not take the token from the environment:\n%s", conf)
	}
	client := nativeEnv(t)
	for _, name := range credentials {
		for _, svc := range []string{"user-service", "order-service", "user-client"} {
			if got := received(p.Services[svc])[name]; got != env[name] {
				t.Errorf("compose %s gets %s=%q, want stack.env's", svc, name, got)
			}
		}
		// Native clients get the stack's environment: make demo's user-client (`stack exec`),
		// the benchmark's loadgen, and the e2e tests' clients.
		if client[name] != env[name] {
			t.Errorf("the native stack's clients get %s=%q, want stack.env's", name, client[name])
		}
		for _, svc := range []string{"user-service", "order-service"} {
			if got := parseEnv(t, strings.Join(nativeComponent(t, svc).Launch(st).Env, "\n"))[name]; got != env[name] {
				t.Errorf("the native %s gets %s=%q, want stack.env's", svc, name, got)
			}
		}
	}
	if !strings.Contains(read(t, "../Makefile"), "$(NATIVE) exec run/bin/user-client") {
		t.Error("make demo does not run user-client through `stack exec`: it would miss the stack's credentials")
	}
}

// Compose runs Prometheus for Jaeger's Monitor tab: it scrapes the collector's Prometheus
// exporter, and Jaeger, on top of the configuration both stacks share, reads its metrics from that
// Prometheus.
func TestComposeMonitorTabReadsTheCollectorsSpanMetrics(t *testing.T) {
	p := loadCompose(t)
	prom, ok := p.Services["prometheus"]
	if !ok {
		t.Fatal("compose has no prometheus service")
	}
	promConfig := flagValue(prom.Command, "--config.file")
	if promConfig == "" || mountedFrom(prom, promConfig) != "prometheus.yaml" {
		t.Errorf("prometheus runs %q, want the mounted prometheus.yaml", promConfig)
	}
	promPort := "9090" // Prometheus' default
	if addr := flagValue(prom.Command, "--web.listen-address"); addr != "" {
		promPort = port(t, addr)
	}

	otel := yamlDocs(t, "otel-config.yaml")[0]
	if exporters, _ := dig(otel, "service", "pipelines", "metrics", "exporters").([]any); !slices.Contains(exporters, any("prometheus")) {
		t.Errorf("the collector's metrics pipeline exports to %v, not to its prometheus exporter", exporters)
	}
	exporter := expandEnv(dig(otel, "exporters", "prometheus", "endpoint").(string), p.Services["otel-collector"].Environment)
	if host, _, _ := net.SplitHostPort(exporter); host != "0.0.0.0" {
		t.Errorf("under compose the collector's prometheus exporter listens on %s, out of Prometheus' reach", exporter)
	}
	want := "otel-collector:" + port(t, exporter)
	if targets := scrapeTargets(t, "prometheus.yaml"); !slices.Contains(targets, want) {
		t.Errorf("prometheus scrapes %v, want %s", targets, want)
	}

	jaeger := p.Services["jaeger"]
	var configs []string
	for i, arg := range jaeger.Command {
		if arg == "--config" && i+1 < len(jaeger.Command) {
			configs = append(configs, mountedFrom(jaeger, jaeger.Command[i+1]))
		}
	}
	if strings.Join(configs, " ") != "jaeger-config.yaml jaeger-monitor.yaml" {
		t.Errorf("jaeger runs %v, want the shared jaeger-config.yaml and over it jaeger-monitor.yaml", configs)
	}
	overlay := yamlDocs(t, "jaeger-monitor.yaml")[0]
	backend, _ := dig(overlay, "extensions", "jaeger_query", "storage", "metrics").(string)
	endpoint, _ := dig(overlay, "extensions", "jaeger_storage", "metric_backends", backend, "prometheus", "endpoint").(string)
	if backend == "" || endpoint == "" {
		t.Fatalf("jaeger-monitor.yaml: jaeger_query reads metrics from %q, a backend with no prometheus endpoint", backend)
	}
	u, err := url.Parse(expandEnv(endpoint, jaeger.Environment))
	if err != nil {
		t.Fatal(err)
	}
	if _, isService := p.Services[u.Hostname()]; !isService || u.Hostname() != "prometheus" || u.Port() != promPort {
		t.Errorf("under compose Jaeger reads metrics from %s, want the prometheus service on %s", u, promPort)
	}
	if base := yamlDocs(t, "jaeger-config.yaml")[0]; dig(base, "extensions", "jaeger_query", "storage", "traces") == nil {
		t.Error("jaeger-config.yaml has no trace storage for the overlay to add metrics to")
	}
}

// The collector's configuration uses only components the native build has (the compose image,
// contrib, has them all), and its logs pipeline is built as the others are.
func TestCollectorConfigFitsTheNativeBuild(t *testing.T) {
	otel := yamlDocs(t, "otel-config.yaml")[0]
	manifest := read(t, "native/otelcol/manifest.yaml")
	for file, config := range map[string]map[string]any{"otel-config.yaml": otel, "otel-tail-sampling.yaml": yamlDocs(t, "otel-tail-sampling.yaml")[0]} {
		for _, kind := range []string{"receivers", "processors", "exporters", "connectors", "extensions"} {
			section, _ := config[kind].(map[string]any)
			for id := range section {
				// A component id is type[/name]; ocb modules are named <type without _><kind>
				// (a few, such as file_storage's, <type without _> alone).
				typ, _, _ := strings.Cut(id, "/")
				module := strings.ReplaceAll(typ, "_", "") + strings.TrimSuffix(kind, "s")
				if !regexp.MustCompile(`/(` + module + `|` + strings.ReplaceAll(typ, "_", "") + `) v`).MatchString(manifest) {
					t.Errorf("%s uses %s %q; native/otelcol/manifest.yaml builds no %s", file, kind, id, module)
				}
			}
		}
	}
	logs, _ := dig(otel, "service", "pipelines", "logs").(map[string]any)
	if logs == nil {
		t.Fatal("otel-config.yaml has no logs pipeline")
	}
	receivers, _ := logs["receivers"].([]any)
	processors, _ := logs["processors"].([]any)
	exporters, _ := logs["exporters"].([]any)
	if !slices.Contains(receivers, any("otlp")) || len(processors) == 0 || processors[0] != "memory_limiter" ||
		!slices.Contains(processors, any("batch")) || len(exporters) == 0 {
		t.Errorf("logs pipeline %v: want otlp -> memory_limiter first, batch -> an exporter", logs)
	}
}

// flagValue is the value of a --name=value or --name value argument.
func flagValue(args []string, name string) string {
	for i, arg := range args {
		if v, ok := strings.CutPrefix(arg, name+"="); ok {
			return v
		}
		if arg == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// mountedFrom names the file of deploy/ that a service sees at target, "" if none.
func mountedFrom(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Target == target {
			return v.Source[strings.LastIndex(v.Source, "/")+1:]
		}
	}
	return ""
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatalf("%q: %v", hostport, err)
	}
	return p
}

// envRef is a variable reference of the collector's configuration: ${env:NAME} or
// ${env:NAME:-default}.
var envRef = regexp.MustCompile(`\$\{env:([A-Z0-9_]+)(?::-([^}]*))?\}`)

// expandEnv resolves the references of v as the collector and Jaeger do, from env.
func expandEnv(v string, env types.MappingWithEquals) string {
	return envRef.ReplaceAllStringFunc(v, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if value, ok := env[m[1]]; ok && value != nil {
			return *value
		}
		return m[2]
	})
}

// scrapeTargets lists the static targets of a Prometheus configuration.
func scrapeTargets(t *testing.T, file string) []string {
	var cfg struct {
		ScrapeConfigs []struct {
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal([]byte(read(t, file)), &cfg); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var targets []string
	for _, sc := range cfg.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	return targets
}

// envRefs lists the ${env:NAME} variables a config file reads.
func envRefs(t *testing.T, file string) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range envRef.FindAllStringSubmatch(read(t, file), -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			out = append(out, m[1])
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s reads no variables", file)
	}
	return out
}

// nativeStack is the native stack (internal/stack), with the settings of the test process's
// environment.
func nativeStack(t *testing.T) *stack.Stack {
	t.Helper()
	st, err := stack.New("..")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// nativeComponent is the native stack's component that compose calls svc.
func nativeComponent(t *testing.T, svc string) stack.Component {
	t.Helper()
	for _, c := range stack.Components() {
		if c.Compose == svc {
			return c
		}
	}
	t.Fatalf("the native stack runs no %s", svc)
	return stack.Component{}
}

// nativeEnv is what the native stack gives its clients (`stack env`).
func nativeEnv(t *testing.T) map[string]string {
	return parseEnv(t, strings.Join(nativeStack(t).ClientEnv(), "\n"))
}

func servicePorts(t *testing.T, p *types.Project) map[string]string {
	ports := map[string]string{}
	for _, svc := range []string{"user-service", "order-service"} {
		addr := deref(p.Services[svc].Environment["MICRO_SERVER_ADDRESS"])
		ports[svc] = addr[strings.LastIndex(addr, ":")+1:]
	}
	return ports
}

// hostless drops the host of an address, which is the one thing the stacks differ in.
func hostless(v string) string {
	return regexp.MustCompile(`^(\w+://)?[\w.-]+:(\d+)$`).ReplaceAllString(v, "${1}:$2")
}

func parseEnvFile(t *testing.T, file string) map[string]string { return parseEnv(t, read(t, file)) }

func parseEnv(t *testing.T, text string) map[string]string {
	env := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	if len(env) == 0 {
		t.Fatal("no variables")
	}
	return env
}

func yamlDocs(t *testing.T, files ...string) []map[string]any {
	var docs []map[string]any
	for _, f := range files {
		dec := yaml.NewDecoder(strings.NewReader(read(t, f)))
		for {
			var doc map[string]any
			err := dec.Decode(&doc)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			docs = append(docs, doc)
		}
	}
	return docs
}

func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func toString(v any) string { return fmt.Sprint(v) }

func read(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
