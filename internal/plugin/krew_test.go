package plugin_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// krewPlugin is the part of krew's Plugin manifest (v1alpha2) that krew
// validates before it installs.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

// The krew manifest is what krew's validate-krew-manifest checks: the
// name of the file and the plugin, a semantic version that the archive
// URIs carry, one platform per os/arch, checksums, and the binary's name.
func TestKrewManifest(t *testing.T) {
	path := filepath.Join("..", "..", "dist", "krew", "exokey.yaml")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var manifest krewPlugin
	if err := yaml.UnmarshalStrict(raw, &manifest); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if manifest.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || manifest.Kind != "Plugin" {
		t.Errorf("apiVersion/kind %s/%s, want krew.googlecontainertools.github.com/v1alpha2/Plugin", manifest.APIVersion, manifest.Kind)
	}
	if manifest.Metadata.Name != strings.TrimSuffix(filepath.Base(path), ".yaml") {
		t.Errorf("metadata.name %q must be the file's name", manifest.Metadata.Name)
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(manifest.Spec.Version) {
		t.Errorf("spec.version %q is not vMAJOR.MINOR.PATCH", manifest.Spec.Version)
	}
	if manifest.Spec.ShortDescription == "" || len(manifest.Spec.ShortDescription) > 80 || manifest.Spec.Homepage == "" {
		t.Errorf("a homepage and a shortDescription of at most 80 characters are needed")
	}
	var seen []string
	for i, p := range manifest.Spec.Platforms {
		os, arch := p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]
		platform := os + "/" + arch
		if os == "" || arch == "" || slices.Contains(seen, platform) {
			t.Errorf("platforms[%d]: selector %v: want a distinct os and arch", i, p.Selector.MatchLabels)
		}
		seen = append(seen, platform)
		if !strings.HasPrefix(p.URI, "https://") || !strings.Contains(p.URI, "/"+manifest.Spec.Version+"/") ||
			!strings.HasSuffix(p.URI, "_"+os+"_"+arch+".tar.gz") {
			t.Errorf("platforms[%d]: uri %q is not the %s archive of %s", i, p.URI, platform, manifest.Spec.Version)
		}
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(p.Sha256) {
			t.Errorf("platforms[%d]: sha256 %q", i, p.Sha256)
		}
		want := "kubectl-exokey"
		if os == "windows" {
			want += ".exe"
		}
		if p.Bin != want {
			t.Errorf("platforms[%d]: bin %q, want %q", i, p.Bin, want)
		}
	}
	for _, platform := range []string{"linux/amd64", "linux/arm64", "darwin/amd64", "darwin/arm64", "windows/amd64"} {
		if !slices.Contains(seen, platform) {
			t.Errorf("no archive for %s", platform)
		}
	}
}
