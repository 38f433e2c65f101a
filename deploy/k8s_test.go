package deploy_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// kustomize renders a kustomization as `kubectl apply -k dir` would, keyed by kind/name.
func kustomize(t *testing.T, dir string) map[string]map[string]any {
	t.Helper()
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize %s: %v", dir, err)
	}
	out, err := res.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]map[string]any{}
	for _, part := range strings.Split(string(out), "\n---\n") {
		var doc map[string]any
		if err := yaml.Unmarshal([]byte(part), &doc); err != nil {
			t.Fatal(err)
		}
		docs[doc["kind"].(string)+"/"+dig(doc, "metadata", "name").(string)] = doc
	}
	return docs
}

func container(t *testing.T, d map[string]any) map[string]any {
	t.Helper()
	cs, _ := dig(d, "spec", "template", "spec", "containers").([]any)
	if len(cs) != 1 {
		t.Fatalf("%v: want one container", dig(d, "metadata", "name"))
	}
	return cs[0].(map[string]any)
}

// The rendered manifests give each service the environment compose gives it, the same ports,
// the credentials from the Secret, and keep one database per service through a rollout.
func TestKubernetesMatchesCompose(t *testing.T) {
	p := loadCompose(t)
	docs := kustomize(t, "k8s")
	config := map[string]string{}
	for k, v := range dig(docs["ConfigMap/go-micro-otel"], "data").(map[string]any) {
		config[k] = v.(string)
	}
	for k, v := range parseEnvFile(t, "stack.env") {
		if slices.Contains(credentials, k) {
			if _, ok := config[k]; ok {
				t.Errorf("k8s ConfigMap holds the secret %s", k)
			}
			continue
		}
		if config[k] != v {
			t.Errorf("k8s ConfigMap %s = %q, stack.env has %q", k, config[k], v)
		}
	}
	ports := servicePorts(t, p)
	for _, svc := range []string{"user-service", "order-service"} {
		d, ok := docs["Deployment/"+svc]
		if !ok {
			t.Fatalf("no Deployment %s", svc)
		}
		c := container(t, d)
		env := map[string]string{}
		for k, v := range config {
			env[k] = v
		}
		fromSecret := map[string]bool{}
		for _, e := range c["env"].([]any) {
			e := e.(map[string]any)
			name := e["name"].(string)
			if v, ok := e["value"].(string); ok {
				env[name] = v
			}
			if ref, ok := dig(e, "valueFrom", "secretKeyRef").(map[string]any); ok {
				fromSecret[name] = ref["name"] == "go-micro-otel-credentials" && ref["key"] == name && ref["optional"] != true
			}
		}
		for _, name := range credentials {
			if !fromSecret[name] {
				t.Errorf("%s does not require %s from the go-micro-otel-credentials Secret", svc, name)
			}
		}
		for name, value := range received(p.Services[svc]) {
			if slices.Contains(credentials, name) {
				continue
			}
			if name == "OTEL_RESOURCE_ATTRIBUTES" {
				if !strings.HasPrefix(env[name], value) {
					t.Errorf("%s %s = %q, want it to extend %q", svc, name, env[name], value)
				}
				continue
			}
			if env[name] != value {
				t.Errorf("%s %s: k8s %q, compose %q", svc, name, env[name], value)
			}
		}
		port := dig(c, "ports").([]any)[0].(map[string]any)["containerPort"]
		if toString(port) != ports[svc] {
			t.Errorf("%s containerPort %v, compose listens on %s", svc, port, ports[svc])
		}
		if c["image"] != p.Services[svc].Image {
			t.Errorf("%s image %q, compose builds %q", svc, c["image"], p.Services[svc].Image)
		}
		if strings.Join(toStrings(dig(c, "readinessProbe", "exec", "command")), " ") != "/app healthcheck" {
			t.Errorf("%s is ready before it is registered: readinessProbe %v", svc, c["readinessProbe"])
		}
		if c["livenessProbe"] == nil {
			t.Errorf("%s has no livenessProbe", svc)
		}
		if dig(c, "resources", "limits", "memory") == nil {
			t.Errorf("%s has no memory limit", svc)
		}

		// One database per service: one pod at a time, on a volume that outlives it.
		if r := dig(d, "spec", "replicas"); toString(r) != "1" {
			t.Errorf("%s runs %v replicas on SQLite", svc, r)
		}
		if s := dig(d, "spec", "strategy", "type"); s != "Recreate" {
			t.Errorf("%s rolls out with %v: two pods, two databases, both in Consul", svc, s)
		}
		volumes := map[string]map[string]any{}
		for _, v := range dig(d, "spec", "template", "spec", "volumes").([]any) {
			volumes[v.(map[string]any)["name"].(string)] = v.(map[string]any)
		}
		mounts := map[string]string{}
		for _, m := range c["volumeMounts"].([]any) {
			m := m.(map[string]any)
			mounts[m["mountPath"].(string)] = m["name"].(string)
		}
		dataDir := env["DATA_DIR"]
		claim, _ := dig(volumes[mounts[dataDir]], "persistentVolumeClaim", "claimName").(string)
		pvc, ok := docs["PersistentVolumeClaim/"+claim]
		if !ok {
			t.Errorf("%s keeps %s on %v, not on a PersistentVolumeClaim of the kustomization", svc, dataDir, volumes[mounts[dataDir]])
		} else if modes := toStrings(dig(pvc, "spec", "accessModes")); !slices.Equal(modes, []string{"ReadWriteOnce"}) {
			t.Errorf("%s's claim %s has access modes %v, want ReadWriteOnce", svc, claim, modes)
		}
		if dig(c, "securityContext", "readOnlyRootFilesystem") == true {
			if tmp, ok := volumes[mounts["/tmp"]]; !ok || tmp["emptyDir"] == nil {
				t.Errorf("%s: read-only root and no writable /tmp for SQLite's temporary files", svc)
			}
		}
	}
}

// The image names of the manifests are the ones the kustomization's images entries rewrite:
// `kustomize edit set image` (newName, newTag) points a cluster at a registry it can reach.
func TestKubernetesImagesCanBeRenamed(t *testing.T) {
	base, err := filepath.Abs("k8s")
	if err != nil {
		t.Fatal(err)
	}
	overlay := t.TempDir()
	rel, err := filepath.Rel(overlay, base) // kustomize takes no absolute resource
	if err != nil {
		t.Fatal(err)
	}
	kustomization := `resources: [` + rel + `]
images:
  - { name: go-micro-otel/user-service, newName: registry.example.com/team/user-service, newTag: "1.0" }
  - { name: go-micro-otel/order-service, newName: registry.example.com/team/order-service, newTag: "1.0" }
`
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kustomization), 0o600); err != nil {
		t.Fatal(err)
	}
	docs := kustomize(t, overlay)
	for _, svc := range []string{"user-service", "order-service"} {
		if got, want := container(t, docs["Deployment/"+svc])["image"], "registry.example.com/team/"+svc+":1.0"; got != want {
			t.Errorf("%s image %v, want %s", svc, got, want)
		}
	}
}

func toStrings(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		out = append(out, toString(x))
	}
	return out
}
