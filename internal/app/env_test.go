package app

import (
	"strings"
	"testing"
)

func TestDatabaseURLMustBePostgres(t *testing.T) {
	t.Setenv(EnvRegistry, "memory")
	for url, ok := range map[string]bool{
		"":                                  true,
		"postgres://app:s3cret@db:5432/ref": true,
		"postgresql://db/ref":               true,
		"mysql://app:s3cret@db/ref":         false,
		"host=db password=s3cret":           false,
	} {
		t.Setenv(EnvDatabaseURL, url)
		d, err := DepsFromEnv("user.service", nil, nil)
		switch {
		case ok && (err != nil || d.DatabaseURL != url):
			t.Errorf("%q: DatabaseURL %q, %v", url, d.DatabaseURL, err)
		case !ok && err == nil:
			t.Errorf("%q accepted", url)
		case !ok && strings.Contains(err.Error(), "s3cret"):
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
