package argocd_test

import (
	"os"
	"path/filepath"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/exokey/exokey/test/argocd"
)

// Every health_test.yaml case, as Argo CD's own repository runs them.
func TestHealthChecksAgainstTheirTestdata(t *testing.T) {
	root := filepath.Join("..", "..")
	dirs, err := filepath.Glob(filepath.Join(root, argocd.Customizations, "iam.exokey.io", "*"))
	if err != nil || len(dirs) != 3 {
		t.Fatalf("found %d kinds (%v), want AccessKey, KeyIssuer and ClusterKeyIssuer", len(dirs), err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			var cases struct {
				Tests []struct {
					HealthStatus argocd.Health `json:"healthStatus"`
					InputPath    string        `json:"inputPath"`
				} `json:"tests"`
			}
			if err := yaml.Unmarshal(raw, &cases); err != nil {
				t.Fatal(err)
			}
			if len(cases.Tests) < 4 {
				t.Fatalf("%d cases, want Progressing, Healthy, Degraded and a wait that heals", len(cases.Tests))
			}
			for _, tc := range cases.Tests {
				input, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
				if err != nil {
					t.Fatal(err)
				}
				var obj map[string]any
				if err := yaml.Unmarshal(input, &obj); err != nil {
					t.Fatal(err)
				}
				if obj["kind"] != filepath.Base(dir) {
					t.Errorf("%s is a %v, not a %s", tc.InputPath, obj["kind"], filepath.Base(dir))
				}
				got, err := argocd.Evaluate(filepath.Join(dir, "health.lua"), obj)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.HealthStatus {
					t.Errorf("%s: %+v, want %+v", tc.InputPath, got, tc.HealthStatus)
				}
			}
		})
	}
}
