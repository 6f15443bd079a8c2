// Package release builds exokey's release artifacts with no container
// engine and no registry: the manager's image for several platforms,
// assembled with go-containerregistry's mutate and layout packages from a
// static binary the Go toolchain cross-compiles, with an SPDX SBOM of its
// Go modules, and written as an OCI image layout archive.
package release

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's shape.
const (
	// User is the image's user: non-root, as distroless's nonroot is.
	User = "65532:65532"
	// Entrypoint is the manager, the image's only program.
	Entrypoint = "/manager"
	// SBOMPath is where each platform's SBOM sits in its image.
	SBOMPath = "usr/share/doc/exokey/sbom.spdx.json"
	// Source is the project's repository, for the OCI source label.
	Source = "https://github.com/exokey/exokey"
	// Licenses is the project's licence, as the OCI licenses label says it.
	Licenses = "Apache-2.0"
)

// ImageOptions say what to build.
type ImageOptions struct {
	// Root is the repository's root; Package the manager's, under it.
	Root, Package string
	// Platforms as os/arch, e.g. linux/amd64.
	Platforms []string
	// Version and Revision label the image; Created dates it (and every
	// file in it), so that the same tree builds the same digest.
	Version, Revision string
	Created           time.Time
}

// Labels are the OCI labels (and annotations) of the image.
func (o ImageOptions) Labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.source":   Source,
		"org.opencontainers.image.version":  o.Version,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.licenses": Licenses,
		"org.opencontainers.image.title":    "exokey",
		"org.opencontainers.image.created":  o.Created.UTC().Format(time.RFC3339),
	}
}

// BuildImage cross-compiles the manager for every platform and assembles
// the image index.
func BuildImage(ctx context.Context, o ImageOptions) (v1.ImageIndex, error) {
	work, err := os.MkdirTemp("", "exokey-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	index := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, platform := range o.Platforms {
		goos, goarch, ok := strings.Cut(platform, "/")
		if !ok {
			return nil, fmt.Errorf("platform %q: want os/arch", platform)
		}
		binary := filepath.Join(work, "manager-"+goos+"-"+goarch)
		if err := compile(ctx, o, goos, goarch, binary); err != nil {
			return nil, err
		}
		img, err := image(o, goos, goarch, binary)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", platform, err)
		}
		index = mutate.AppendManifests(index, mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: goos, Architecture: goarch}}})
	}
	return mutate.Annotations(index, o.Labels()).(v1.ImageIndex), nil
}

// compile builds a static, reproducible manager: no cgo, no paths of this
// machine, no build ID of its own.
func compile(ctx context.Context, o ImageOptions, goos, goarch, out string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid=", "-o", out, o.Package)
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=-mod=mod")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build for %s/%s: %w: %s", goos, goarch, err, output)
	}
	return nil
}

// image is one platform's image: one layer (the manager and its SBOM) on
// nothing, run as a non-root user.
func image(o ImageOptions, goos, goarch, binary string) (v1.Image, error) {
	manager, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	sbom, err := SBOM(binary, o.Version, o.Revision, goos+"/"+goarch, o.Created)
	if err != nil {
		return nil, err
	}
	files, err := layerTar(o.Created, []file{
		{name: strings.TrimPrefix(Entrypoint, "/"), mode: 0o555, data: manager},
		{name: SBOMPath, mode: 0o444, data: sbom},
	})
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(files)), nil },
		tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, MediaType: types.OCILayer,
		History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "exokey release: the manager and its SBOM", Comment: "static Go binary"}})
	if err != nil {
		return nil, err
	}
	config, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	config = config.DeepCopy()
	config.OS, config.Architecture = goos, goarch
	config.Created = v1.Time{Time: o.Created}
	config.Config.User = User
	config.Config.Entrypoint = []string{Entrypoint}
	config.Config.WorkingDir = "/"
	config.Config.Labels = o.Labels()
	if img, err = mutate.ConfigFile(img, config); err != nil {
		return nil, err
	}
	return mutate.Annotations(img, o.Labels()).(v1.Image), nil
}

type file struct {
	name string
	mode int64
	data []byte
}

// layerTar writes files, and the directories above them, as a tar whose
// every header is fixed: root-owned, dated created.
func layerTar(created time.Time, files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	seen := map[string]bool{}
	for _, f := range files {
		var dirs []string
		for dir := filepath.Dir(f.name); dir != "." && !seen[dir]; dir = filepath.Dir(dir) {
			dirs = append([]string{dir}, dirs...)
			seen[dir] = true
		}
		for _, dir := range dirs {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: created, Format: tar.FormatUSTAR}); err != nil {
				return nil, err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)),
			ModTime: created, Format: tar.FormatUSTAR}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
