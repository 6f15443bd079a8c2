//go:build e2e

package e2e

import (
	"archive/tar"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/exokey/exokey/internal/release"
)

// The manager's image, built as `make image` builds it, pushed to a
// registry and pulled back by tag as a cluster would, then run.
var _ = Describe("The manager's image", Ordered, func() {
	var (
		options release.ImageOptions
		index   v1.ImageIndex
		pulled  v1.ImageIndex
		// registry is an in-process registry, up for the whole container:
		// layers are pulled from it lazily.
		registryHost string
	)
	BeforeAll(func() {
		options = release.ImageOptions{Root: root, Package: "./cmd", Platforms: []string{"linux/amd64", "linux/arm64"},
			Version: "v0.0.0-e2e", Revision: "0123456789abcdef", Created: time.Unix(1764633600, 0).UTC()}
		started := time.Now()
		var err error
		index, err = release.BuildImage(ctx, options)
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("image build", time.Since(started).Round(100*time.Millisecond).String())
		server := httptest.NewServer(registry.New())
		DeferCleanup(server.Close)
		registryHost = strings.TrimPrefix(server.URL, "http://")
	})

	It("builds the same digest twice from the same tree", func() {
		again, err := release.BuildImage(ctx, options)
		Expect(err).NotTo(HaveOccurred())
		first, err := index.Digest()
		Expect(err).NotTo(HaveOccurred())
		second, err := again.Digest()
		Expect(err).NotTo(HaveOccurred())
		Expect(second).To(Equal(first))
		AddReportEntry("image digest", first.String())
	})

	It("is written as an OCI image layout archive naming its tag", func() {
		archive := filepath.Join(workDir, "exokey-image.tar")
		Expect(release.WriteArchive(archive, index, "registry.example.com/exokey:v0.0.0-e2e", options.Created)).To(Succeed())
		dir := filepath.Join(workDir, "layout")
		untar(archive, dir)
		p, err := layout.FromPath(dir)
		Expect(err).NotTo(HaveOccurred())
		top, err := p.ImageIndex()
		Expect(err).NotTo(HaveOccurred())
		manifest, err := top.IndexManifest()
		Expect(err).NotTo(HaveOccurred())
		Expect(manifest.Manifests).To(HaveLen(1))
		Expect(manifest.Manifests[0].Annotations).To(HaveKeyWithValue("org.opencontainers.image.ref.name", "v0.0.0-e2e"))
		Expect(manifest.Manifests[0].Annotations).To(HaveKeyWithValue("io.containerd.image.name", "registry.example.com/exokey:v0.0.0-e2e"))
		want, err := index.Digest()
		Expect(err).NotTo(HaveOccurred())
		Expect(manifest.Manifests[0].Digest).To(Equal(want))
		info, err := os.Stat(archive)
		Expect(err).NotTo(HaveOccurred())
		AddReportEntry("image archive", info.Size())
	})

	It("is pushed to a registry and pulled back by tag with both platforms, non-root, its entrypoint and labels", func() {
		ref, err := name.ParseReference(registryHost + "/exokey/manager:v0.0.0-e2e")
		Expect(err).NotTo(HaveOccurred())
		Expect(remote.WriteIndex(ref, index, remote.WithContext(ctx))).To(Succeed())
		pulled, err = remote.Index(ref, remote.WithContext(ctx))
		Expect(err).NotTo(HaveOccurred())
		manifest, err := pulled.IndexManifest()
		Expect(err).NotTo(HaveOccurred())
		var platforms []string
		for _, m := range manifest.Manifests {
			platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
			img, err := pulled.Image(m.Digest)
			Expect(err).NotTo(HaveOccurred())
			config, err := img.ConfigFile()
			Expect(err).NotTo(HaveOccurred())
			Expect(config.OS + "/" + config.Architecture).To(Equal(platforms[len(platforms)-1]))
			Expect(config.Config.User).To(Equal("65532:65532"))
			Expect(config.Config.Entrypoint).To(Equal([]string{"/manager"}))
			Expect(config.Config.Labels).To(SatisfyAll(
				HaveKeyWithValue("org.opencontainers.image.source", release.Source),
				HaveKeyWithValue("org.opencontainers.image.version", "v0.0.0-e2e"),
				HaveKeyWithValue("org.opencontainers.image.revision", "0123456789abcdef"),
				HaveKeyWithValue("org.opencontainers.image.licenses", release.Licenses)))

			files := filesOf(img)
			var paths []string
			for path := range files {
				paths = append(paths, path)
			}
			Expect(paths).To(ConsistOf("manager", release.SBOMPath), "a static binary and its SBOM: no shell, nothing else")
			var sbom struct {
				SPDXVersion string `json:"spdxVersion"`
				Packages    []struct {
					Name string `json:"name"`
				} `json:"packages"`
			}
			Expect(json.Unmarshal(files[release.SBOMPath], &sbom)).To(Succeed())
			Expect(sbom.SPDXVersion).To(Equal("SPDX-2.3"))
			var names []string
			for _, p := range sbom.Packages {
				names = append(names, p.Name)
			}
			Expect(names).To(ContainElements("github.com/exokey/exokey", "stdlib", "sigs.k8s.io/controller-runtime",
				"golang.org/x/crypto/x509roots/fallback"))
		}
		Expect(platforms).To(ConsistOf("linux/amd64", "linux/arm64"))
	})

	It("runs: the amd64 manager unpacked from its layers serves an AccessKey", func() {
		Expect(pulled).NotTo(BeNil())
		img, err := pulled.Image(digestOf(pulled, "amd64"))
		Expect(err).NotTo(HaveOccurred())
		rootfs := filepath.Join(workDir, "rootfs")
		extract(img, rootfs)
		m := startManagerFrom("manager-image", filepath.Join(rootfs, "manager"))
		DeferCleanup(m.kill)
		ak := newAccessKey(newNamespace(), "from-image")
		Eventually(func() bool { return ready(ak) }, 2*timeout, poll).Should(BeTrue(), describe(m))
		ok, err := works(secretOf(ak))
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
	})
})

// filesOf reads an image's regular files by path.
func filesOf(img v1.Image) map[string][]byte {
	reader := mutate.Extract(img)
	defer reader.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(reader)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		if h.Typeflag == tar.TypeReg {
			data, err := io.ReadAll(tr)
			ExpectWithOffset(1, err).NotTo(HaveOccurred())
			files[h.Name] = data
		}
	}
}

// extract unpacks an image's file system into dir, as a container runtime would.
func extract(img v1.Image, dir string) {
	for path, data := range filesOf(img) {
		target := filepath.Join(dir, path)
		ExpectWithOffset(1, os.MkdirAll(filepath.Dir(target), 0o755)).To(Succeed())
		ExpectWithOffset(1, os.WriteFile(target, data, 0o555)).To(Succeed())
	}
}

func digestOf(index v1.ImageIndex, arch string) v1.Hash {
	manifest, err := index.IndexManifest()
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	for _, m := range manifest.Manifests {
		if m.Platform != nil && m.Platform.Architecture == arch {
			return m.Digest
		}
	}
	Fail("no " + arch + " image in the index")
	return v1.Hash{}
}

// untar unpacks a tar archive into dir.
func untar(archive, dir string) {
	f, err := os.Open(archive)
	ExpectWithOffset(1, err).NotTo(HaveOccurred())
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		target := filepath.Join(dir, h.Name)
		if h.Typeflag == tar.TypeDir {
			ExpectWithOffset(1, os.MkdirAll(target, 0o755)).To(Succeed())
			continue
		}
		ExpectWithOffset(1, os.MkdirAll(filepath.Dir(target), 0o755)).To(Succeed())
		data, err := io.ReadAll(tr)
		ExpectWithOffset(1, err).NotTo(HaveOccurred())
		ExpectWithOffset(1, os.WriteFile(target, data, 0o644)).To(Succeed())
	}
}
