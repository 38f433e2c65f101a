package stack

import (
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
)

// settings are the stack's variables, read as docker compose reads them with --env-file:
// deploy/stack.env (the local defaults and credentials), under the local file (deploy/.env, or
// the file STACK_LOCAL_ENV names: yours, optional, not in git), under the environment: a
// variable set in the shell, even empty, wins.
type settings map[string]string

// loadSettings reads the settings of the checkout at root, in the environment of this process.
func loadSettings(root string) (settings, error) {
	files := []string{filepath.Join(root, "deploy", "stack.env")}
	local := cmp.Or(os.Getenv("STACK_LOCAL_ENV"), filepath.Join(root, "deploy", ".env"))
	if fi, err := os.Stat(local); err == nil && fi.Mode().IsRegular() {
		files = append(files, local)
	}
	shell := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		shell[k] = v
	}
	s, err := dotenv.GetEnvFromFile(shell, files)
	if err != nil {
		return nil, fmt.Errorf("stack settings: %w", err)
	}
	for k := range s {
		if v, ok := shell[k]; ok {
			s[k] = v
		}
	}
	return s, nil
}

// env is the settings as KEY=VALUE, sorted by name.
func (s settings) env() []string {
	out := make([]string, 0, len(s))
	for k, v := range s {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}
