package deploy_test

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/go-micro-otel/reference/internal/stack"
)

// composeCmd is one docker compose command of the Makefile.
type composeCmd struct {
	files, envFiles []string // as make gives them: relative to the repository root, or absolute
	args            []string // the subcommand and what follows it
}

// makeCompose returns the docker compose commands `make target` runs on a machine with Docker,
// as `make -n` prints them, with vars given to make. STACK_LOCAL_ENV names a file that does not
// exist unless vars set it, so that a developer's own deploy/.env plays no part.
func makeCompose(t *testing.T, target string, vars ...string) []composeCmd {
	t.Helper()
	args := append([]string{"-s", "-n", "-C", "..", "STACK=compose", "STACK_LOCAL_ENV=" + filepath.Join(t.TempDir(), "none.env")}, vars...)
	out, err := exec.Command("make", append(args, target)...).Output()
	if err != nil {
		t.Fatalf("make -n %s: %v", target, err)
	}
	var cmds []composeCmd
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "docker" || f[1] != "compose" {
			continue
		}
		var c composeCmd
		for i := 2; i < len(f); i++ {
			switch f[i] {
			case "-f":
				c.files = append(c.files, f[i+1])
				i++
			case "--env-file":
				c.envFiles = append(c.envFiles, f[i+1])
				i++
			default:
				c.args = f[i:]
				i = len(f)
			}
		}
		cmds = append(cmds, c)
	}
	if len(cmds) == 0 {
		t.Fatalf("make %s runs no docker compose command:\n%s", target, out)
	}
	return cmds
}

// subcommand returns the command of cmds that runs sub (up, run...).
func subcommand(t *testing.T, cmds []composeCmd, sub string) composeCmd {
	t.Helper()
	for _, c := range cmds {
		if len(c.args) > 0 && c.args[0] == sub {
			return c
		}
	}
	t.Fatalf("no docker compose %s among %v", sub, cmds)
	return composeCmd{}
}

// fromRoot makes a path make gives relative to the repository root usable from deploy/.
func fromRoot(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join("..", path)
}

// loadLikeCLI loads the project as the docker compose CLI does for c (docker/compose's
// toProjectOptions): the environment of the test process as the shell's, which wins; then the
// --env-file files of c, or without any, the .env beside the compose file.
func loadLikeCLI(c composeCmd, profiles ...string) (*types.Project, error) {
	var files, envFiles []string
	for _, f := range c.files {
		files = append(files, fromRoot(f))
	}
	for _, f := range c.envFiles {
		envFiles = append(envFiles, fromRoot(f))
	}
	opts, err := cli.NewProjectOptions(files,
		cli.WithWorkingDirectory(""),
		cli.WithOsEnv,
		cli.WithEnvFiles(envFiles...), cli.WithDotEnv,
		cli.WithConfigFileEnv, cli.WithDefaultConfigPath,
		cli.WithEnvFiles(envFiles...), cli.WithDotEnv,
		cli.WithDefaultProfiles(profiles...))
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// inShell makes the test process's environment what a user's shell holds: none of the
// variables the stacks read, then env. The compose loader and internal/stack read it.
func inShell(t *testing.T, env map[string]string) {
	t.Helper()
	names := []string{"COMPOSE_FILE", "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME", "COMPOSE_DISABLE_ENV_FILE"}
	names = slices.AppendSeq(names, maps.Keys(serviceEnvDecl(t)))
	names = slices.AppendSeq(names, maps.Keys(parseEnvFile(t, "stack.env")))
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllStringSubmatch(read(t, "docker-compose.yaml"), -1) {
		names = append(names, m[1])
	}
	for _, name := range names {
		t.Setenv(name, "") // restored after the test
		if err := os.Unsetenv(name); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("STACK_LOCAL_ENV", filepath.Join(t.TempDir(), "none.env"))
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// serviceEnvDecl is x-service-env as written: what the services and the client get.
func serviceEnvDecl(t *testing.T) map[string]any {
	t.Helper()
	decl, ok := yamlDocs(t, "docker-compose.yaml")[0]["x-service-env"].(map[string]any)
	if !ok || len(decl) == 0 {
		t.Fatal("docker-compose.yaml has no x-service-env")
	}
	return decl
}

// received is the environment a container of s gets: compose drops the names it could not
// resolve.
func received(s types.ServiceConfig) map[string]string {
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// nativeServiceEnv is the environment the native stack gives user.service, in the test
// process's environment: what every component gets, under the service's own.
func nativeServiceEnv(t *testing.T) map[string]string {
	st := nativeStack(t)
	env := map[string]string{}
	for _, kv := range append(st.Environ(), nativeComponent(t, "user-service").Launch(st).Env...) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

func ptr(s string) *string { return &s }

// The credentials and switches a user sets reach every container of compose, and the native
// services, the same way: the shell over deploy/.env over deploy/stack.env; a switch left unset
// reaches nobody, and one set empty reaches everybody empty.
func TestShellSettingsReachEveryContainer(t *testing.T) {
	file := parseEnvFile(t, "stack.env")
	local := filepath.Join(t.TempDir(), "local.env")
	if err := os.WriteFile(local, []byte("AUTH_TOKEN=\"from-local\"\nRATE_LIMIT_RPS=7\nTAIL_SAMPLING_PERCENT=10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		shell map[string]string
		local string             // STACK_LOCAL_ENV, when set
		want  map[string]*string // nil: not passed
		tail  string             // the collector's TAIL_SAMPLING_PERCENT; empty: tail sampling off
	}{{
		name: "nothing set",
		want: map[string]*string{
			"CONSUL_HTTP_TOKEN": ptr(file["CONSUL_HTTP_TOKEN"]), "NATS_TOKEN": ptr(file["NATS_TOKEN"]),
			"AUTH_TOKEN": ptr(file["AUTH_TOKEN"]), "OTEL_TRACES_SAMPLER": ptr(file["OTEL_TRACES_SAMPLER"]),
			"RATE_LIMIT_RPS": nil, "FAULT_DELAY": nil, "SPAN_BAGGAGE_KEYS": nil, "DATABASE_URL": nil,
			"MICRO_TRACING": nil, "OTEL_LOGS_EXPORTER": nil, "SAMPLING_RULES": nil,
		},
		tail: "",
	}, {
		name:  "own credentials",
		shell: map[string]string{"CONSUL_HTTP_TOKEN": "consul-from-shell", "NATS_TOKEN": "nats-from-shell", "AUTH_TOKEN": "auth-from-shell"},
		want: map[string]*string{
			"CONSUL_HTTP_TOKEN": ptr("consul-from-shell"), "NATS_TOKEN": ptr("nats-from-shell"), "AUTH_TOKEN": ptr("auth-from-shell"),
		},
		tail: "",
	}, {
		name: "the README's switches",
		shell: map[string]string{
			"AUTH_TOKEN": "s3cret", "RATE_LIMIT_RPS": "500", "RATE_LIMIT_BURST": "50",
			"FAULT_DELAY": "Order.CountOrders=300ms", "FAULT_ERROR_RATE": "Order.CreateOrder=0.5",
			"SAMPLING_RULES": "rpc.method=payment.*:1; *:0.1", "SPAN_BAGGAGE_KEYS": "",
			"DATABASE_URL": "postgres://app:pw@db:5432/ref", "MICRO_TRACING": "plugin",
			"OTEL_LOGS_EXPORTER": "otlp", "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
			"OTEL_TRACES_SAMPLER_ARG": "0.1", "TAIL_SAMPLING_PERCENT": "0",
		},
		want: map[string]*string{
			"AUTH_TOKEN": ptr("s3cret"), "RATE_LIMIT_RPS": ptr("500"), "RATE_LIMIT_BURST": ptr("50"),
			"FAULT_DELAY": ptr("Order.CountOrders=300ms"), "FAULT_ERROR_RATE": ptr("Order.CreateOrder=0.5"),
			"SAMPLING_RULES": ptr("rpc.method=payment.*:1; *:0.1"), "SPAN_BAGGAGE_KEYS": ptr(""),
			"DATABASE_URL": ptr("postgres://app:pw@db:5432/ref"), "MICRO_TRACING": ptr("plugin"),
			"OTEL_LOGS_EXPORTER": ptr("otlp"), "OTEL_TRACES_SAMPLER": ptr("parentbased_traceidratio"),
			"OTEL_TRACES_SAMPLER_ARG": ptr("0.1"), "CONSUL_HTTP_TOKEN": ptr(file["CONSUL_HTTP_TOKEN"]),
		},
		tail: "0",
	}, {
		name:  "authentication off",
		shell: map[string]string{"AUTH_TOKEN": ""},
		want:  map[string]*string{"AUTH_TOKEN": ptr(""), "NATS_TOKEN": ptr(file["NATS_TOKEN"])},
		tail:  "",
	}, {
		name:  "a local env file under the shell",
		shell: map[string]string{"RATE_LIMIT_RPS": "9"},
		local: local,
		want: map[string]*string{
			"AUTH_TOKEN": ptr("from-local"), "RATE_LIMIT_RPS": ptr("9"),
			"CONSUL_HTTP_TOKEN": ptr(file["CONSUL_HTTP_TOKEN"]), "FAULT_DELAY": nil,
		},
		tail: "10",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			inShell(t, tc.shell)
			var vars []string
			if tc.local != "" {
				vars = append(vars, "STACK_LOCAL_ENV="+tc.local)
				t.Setenv("STACK_LOCAL_ENV", tc.local)
			}
			p, err := loadLikeCLI(subcommand(t, makeCompose(t, "demo", vars...), "up"), "demo")
			if err != nil {
				t.Fatalf("compose does not load: %v", err)
			}
			native := nativeServiceEnv(t)
			for name, want := range tc.want {
				for _, svc := range []string{"user-service", "order-service", "user-client"} {
					got, ok := received(p.Services[svc])[name]
					switch {
					case want == nil && ok:
						t.Errorf("compose %s gets %s=%q, want it unset", svc, name, got)
					case want != nil && (!ok || got != *want):
						t.Errorf("compose %s gets %s=%q (set %v), want %q", svc, name, got, ok, *want)
					}
				}
				got, ok := native[name]
				switch {
				case want == nil && ok:
					t.Errorf("native services get %s=%q, want it unset", name, got)
				case want != nil && (!ok || got != *want):
					t.Errorf("native services get %s=%q (set %v), want %q", name, got, ok, *want)
				}
			}
			consul := strings.Join(p.Services["consul"].Command, " ")
			if want := `initial_management = "` + received(p.Services["user-service"])["CONSUL_HTTP_TOKEN"] + `"`; !strings.Contains(consul, want) {
				t.Errorf("Consul's management token differs from the services' token: %s", consul)
			}
			if got, want := received(p.Services["nats"])["NATS_TOKEN"], received(p.Services["user-service"])["NATS_TOKEN"]; got != want {
				t.Errorf("NATS's token %q differs from the services' token %q", got, want)
			}
			if got := received(p.Services["otel-collector"])["TAIL_SAMPLING_PERCENT"]; got != tc.tail {
				t.Errorf("collector TAIL_SAMPLING_PERCENT=%q, want %q", got, tc.tail)
			}
			collector := nativeComponent(t, "otel-collector").Launch(nativeStack(t))
			if got := parseEnv(t, strings.Join(collector.Env, "\n"))["TAIL_SAMPLING_PERCENT"]; got != tc.tail || (len(collector.Args) > 2) != (tc.tail != "") {
				t.Errorf("native collector TAIL_SAMPLING_PERCENT=%q running %v, want %q", got, collector.Args, tc.tail)
			}
			for name, s := range p.Services {
				for _, port := range s.Ports {
					if port.HostIP != "127.0.0.1" {
						t.Errorf("%s publishes %s on %q, not 127.0.0.1 only", name, port.Published, port.HostIP)
					}
				}
			}
			composeConfigAgrees(t, p, subcommand(t, makeCompose(t, "demo", vars...), "up"))
		})
	}
}

// Every variable of the README's Configuration table and of stack.env reaches the compose
// services, except those each stack sets for itself and PPROF_ADDR, which the README says compose
// does not pass; TAIL_SAMPLING_PERCENT reaches the collector.
func TestComposePassesTheREADMEsVariables(t *testing.T) {
	p := loadCompose(t)
	readme := read(t, "../README.md")
	table := readme[strings.Index(readme, "| variable | default | meaning |"):]
	table = table[:strings.Index(table, "\n\n")]
	names := slices.Collect(maps.Keys(parseEnvFile(t, "stack.env")))
	for _, row := range strings.Split(table, "\n")[2:] {
		cell := strings.Split(row, "|")[1]
		for _, m := range regexp.MustCompile("`([A-Z0-9_]+)`").FindAllStringSubmatch(cell, -1) {
			names = append(names, m[1])
		}
	}
	if len(names) < 20 {
		t.Fatalf("found only %v in the README's Configuration table", names)
	}
	decl := serviceEnvDecl(t)
	for _, name := range names {
		switch name {
		case "MICRO_SERVER_ADDRESS", "DATA_DIR": // per service
			for _, svc := range []string{"user-service", "order-service"} {
				if _, ok := received(p.Services[svc])[name]; !ok {
					t.Errorf("compose %s does not set %s", svc, name)
				}
			}
		case "JAEGER_QUERY_URL": // the client's alone
			if _, ok := received(p.Services["user-client"])[name]; !ok {
				t.Errorf("compose user-client does not set %s", name)
			}
		case "TAIL_SAMPLING_PERCENT":
			if _, ok := p.Services["otel-collector"].Environment[name]; !ok {
				t.Errorf("compose does not pass %s to the collector", name)
			}
		case "PPROF_ADDR":
			if _, ok := decl[name]; ok || !strings.Contains(readme, "`PPROF_ADDR` is not passed") {
				t.Errorf("PPROF_ADDR: compose passes it %v, the README says it does not", ok)
			}
		default:
			if _, ok := decl[name]; !ok {
				t.Errorf("README's %s is not in x-service-env: it never reaches the compose services", name)
			}
		}
	}
}

// requireComposeCLI skips the rest of the test, saying so, where the docker compose CLI is not
// installed: what came before it checked the file with compose's own loader. make compose-smoke,
// which brings the CLI, runs these tests again with COMPOSE_CLI_REQUIRED=1, which makes its
// absence a failure.
func requireComposeCLI(t *testing.T) {
	t.Helper()
	if exec.Command("docker", "compose", "version").Run() == nil {
		return
	}
	if os.Getenv("COMPOSE_CLI_REQUIRED") == "1" {
		t.Fatal("COMPOSE_CLI_REQUIRED=1, and docker compose is not installed")
	}
	t.Skip("no docker compose CLI here: checked with compose's loader alone")
}

// composeConfigAgrees asks the real docker compose CLI, where it is installed, what each
// container gets, and compares it with the loader's answer.
func composeConfigAgrees(t *testing.T, p *types.Project, c composeCmd) {
	t.Helper()
	requireComposeCLI(t)
	args := []string{"compose"}
	for _, f := range c.files {
		args = append(args, "-f", f)
	}
	for _, f := range c.envFiles {
		args = append(args, "--env-file", f)
	}
	cmd := exec.Command("docker", append(args, "--profile", "demo", "config", "--format", "json")...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker compose config: %v", err)
	}
	var cfg struct {
		Services map[string]struct {
			Environment map[string]*string `json:"environment"`
		} `json:"services"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	for name, s := range p.Services {
		cliEnv := map[string]string{}
		for k, v := range cfg.Services[name].Environment {
			if v != nil {
				cliEnv[k] = *v
			}
		}
		if !maps.Equal(cliEnv, received(s)) {
			t.Errorf("%s: docker compose config gives %v, the loader %v", name, cliEnv, received(s))
		}
	}
}

// Run by hand, docker compose needs --env-file deploy/stack.env (or a .env beside the compose
// file) for the credentials, and says so instead of starting a stack with empty tokens.
func TestComposeWithoutTheEnvFileSaysWhatIsMissing(t *testing.T) {
	inShell(t, nil)
	dir := t.TempDir()
	compose := filepath.Join(dir, "docker-compose.yaml")
	if err := os.WriteFile(compose, []byte(read(t, "docker-compose.yaml")), 0o600); err != nil {
		t.Fatal(err)
	}
	bare := composeCmd{files: []string{compose}}
	if _, err := loadLikeCLI(bare); err == nil || !strings.Contains(err.Error(), "--env-file deploy/stack.env") {
		t.Errorf("loaded without credentials, or without saying where they are: %v", err)
	}
	// The .env beside the compose file is read when no --env-file is given.
	dotenv := strings.Replace(read(t, "stack.env"), "AUTH_TOKEN=", "AUTH_TOKEN=dotenv-", 1)
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(dotenv), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := loadLikeCLI(bare)
	if err != nil {
		t.Fatalf("with a .env: %v", err)
	}
	if got := received(p.Services["user-service"])["AUTH_TOKEN"]; got != "dotenv-"+parseEnvFile(t, "stack.env")["AUTH_TOKEN"] {
		t.Errorf("AUTH_TOKEN=%q: the .env beside the compose file was not read", got)
	}
}

// Neither stack starts Consul and NATS with an empty token: compose refuses to load, the native
// stack to start.
func TestStacksRefuseEmptyServerTokens(t *testing.T) {
	for _, name := range []string{"CONSUL_HTTP_TOKEN", "NATS_TOKEN"} {
		t.Run(name, func(t *testing.T) {
			inShell(t, map[string]string{name: ""})
			if _, err := loadLikeCLI(subcommand(t, makeCompose(t, "up"), "up")); err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("compose loaded with %s empty: %v", name, err)
			}
			t.Setenv("STACK_RUN_DIR", t.TempDir())
			if started, err := nativeStack(t).Up(t.Context()); err == nil || !strings.Contains(err.Error(), name+" is empty") || len(started) > 0 {
				t.Errorf("the native stack's up with %s empty: started %v, %v", name, started, err)
			}
		})
	}
}

// `make up` waits, through --wait, for every part it starts to pass its health check: the
// servers', the collector's through a probe the image adds, and the services', which pass once
// registered in Consul. `make demo` runs the client without touching the running stack.
func TestMakeUpWaitsForEveryPartHealthy(t *testing.T) {
	inShell(t, nil)
	demo := makeCompose(t, "demo")
	up := subcommand(t, demo, "up")
	for _, flag := range []string{"-d", "--wait", "--no-recreate"} {
		if !slices.Contains(up.args, flag) {
			t.Errorf("make up runs %v, without %s", up.args, flag)
		}
	}
	run := subcommand(t, demo, "run")
	for _, flag := range []string{"--rm", "--no-deps", "user-client"} {
		if !slices.Contains(run.args, flag) {
			t.Errorf("make demo runs %v, without %s", run.args, flag)
		}
	}

	p, err := loadLikeCLI(up) // no profile: what `up` starts
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Services["user-client"]; ok {
		t.Error("make up starts user-client")
	}
	// A one-shot service (the collector's queue-owner) has nothing to check: what depends on
	// it waits for it to have completed successfully, and --wait for that.
	oneShot := map[string]bool{}
	for _, s := range p.Services {
		for dep, d := range s.DependsOn {
			if d.Condition == types.ServiceConditionCompletedSuccessfully {
				oneShot[dep] = true
			}
		}
	}
	for name, s := range p.Services {
		if !oneShot[name] && (s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) < 2) {
			t.Errorf("%s has no health check: --wait would wait only for it to run", name)
		}
	}
	for _, svc := range []string{"user-service", "order-service"} {
		s := p.Services[svc]
		for _, dep := range []string{"consul", "nats", "otel-collector"} {
			if got := s.DependsOn[dep].Condition; got != types.ServiceConditionHealthy {
				t.Errorf("%s starts after %s is %q, want healthy", svc, dep, got)
			}
		}
		if s.HealthCheck != nil && strings.Join(s.HealthCheck.Test, " ") != "CMD /app healthcheck" {
			t.Errorf("%s health check %v, want the service's own healthcheck (registered in Consul)", svc, s.HealthCheck.Test)
		}
	}

	collector := p.Services["otel-collector"]
	healthPort := port(t, expandEnv(dig(yamlDocs(t, "otel-config.yaml")[0], "extensions", "health_check", "endpoint").(string), collector.Environment))
	if test := collector.HealthCheck; test == nil || len(test.Test) != 3 || test.Test[0] != "CMD" ||
		test.Test[2] != "http://127.0.0.1:"+healthPort+"/" {
		t.Errorf("collector health check %v, want its probe on the health_check extension's port %s", collector.HealthCheck, healthPort)
	}
	if collector.Build == nil {
		t.Fatal("the collector image is not built with its probe")
	}
	dockerfile := read(t, collector.Build.Dockerfile)
	probe := collector.HealthCheck.Test[1]
	if !regexp.MustCompile(`(?m)^FROM otel/opentelemetry-collector-contrib:0\.140\.1$`).MatchString(dockerfile) ||
		!regexp.MustCompile(`(?m)^COPY --from=\w+ \S+ `+regexp.QuoteMeta(probe)+`$`).MatchString(dockerfile) ||
		!strings.Contains(dockerfile, "go build") || !strings.Contains(dockerfile, "./healthcheck") {
		t.Errorf("%s does not add %s, built from ./healthcheck, to the official collector image", collector.Build.Dockerfile, probe)
	}
}

// Compose publishes the ports internal/stack declares as published, for the same component,
// and no other: the README's port table, which is that declaration's, says so.
func TestComposePublishesTheDeclaredPorts(t *testing.T) {
	p := loadCompose(t)
	declared := map[string][]string{} // by compose service
	for _, c := range stack.Components() {
		for _, port := range c.Ports {
			if port.Published {
				declared[c.Compose] = append(declared[c.Compose], strconv.Itoa(port.Number))
			}
		}
	}
	for svc, ports := range stack.ComposeOnly {
		for _, port := range ports {
			declared[svc] = append(declared[svc], strconv.Itoa(port.Number))
		}
	}
	for name, s := range p.Services {
		var published []string
		for _, port := range s.Ports {
			published = append(published, port.Published)
			if strconv.Itoa(int(port.Target)) != port.Published {
				t.Errorf("%s publishes its port %d as %s", name, port.Target, port.Published)
			}
		}
		slices.Sort(published)
		slices.Sort(declared[name])
		if !slices.Equal(published, declared[name]) {
			t.Errorf("compose %s publishes %v; internal/stack declares %v", name, published, declared[name])
		}
	}
}

// Bind-mounted configuration is read-only and relabelled for SELinux hosts (:z), where a
// container could not read it otherwise.
func TestComposeBindMountsAreReadOnlyAndRelabelled(t *testing.T) {
	p := loadCompose(t)
	n := 0
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			n++
			if !v.ReadOnly || v.Bind == nil || v.Bind.SELinux != "z" {
				t.Errorf("%s mounts %s without ro,z", name, v.Source)
			}
		}
	}
	if n == 0 {
		t.Fatal("no bind mounts found")
	}
}
