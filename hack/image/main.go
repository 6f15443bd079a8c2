// Command image builds the manager's container image with no container
// engine: `make image` writes bin/exokey-image.tar, an OCI image layout
// archive for linux/amd64 and linux/arm64 (internal/release says how).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/exokey/exokey/internal/release"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run() error {
	var o release.ImageOptions
	var platforms, out, ref string
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "os/arch list")
	flag.StringVar(&o.Version, "version", "dev", "the image's version label")
	flag.StringVar(&ref, "ref", "", "the image's name in the archive (default exokey:<version>)")
	flag.StringVar(&out, "out", "bin/exokey-image.tar", "the OCI image layout archive to write")
	flag.Parse()
	o.Root, o.Package, o.Platforms = ".", "./cmd", strings.Split(platforms, ",")
	if ref == "" {
		ref = "exokey:" + o.Version
	}
	var err error
	if o.Revision, o.Created, err = revision(); err != nil {
		return err
	}
	started := time.Now()
	index, err := release.BuildImage(context.Background(), o)
	if err != nil {
		return err
	}
	if err := release.WriteArchive(out, index, ref, o.Created); err != nil {
		return err
	}
	digest, err := index.Digest()
	if err != nil {
		return err
	}
	info, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %s (%s), %d bytes, built in %s\n", out, ref, digest, info.Size(), time.Since(started).Round(100*time.Millisecond))
	return nil
}

// revision is the commit the tree is at and its date (SOURCE_DATE_EPOCH
// when set), which dates every file: the same commit builds the same
// digest. A tree with uncommitted changes is labelled <commit>-dirty.
func revision() (string, time.Time, error) {
	commit, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("git rev-parse HEAD: %w", err)
	}
	rev := strings.TrimSpace(string(commit))
	if status, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(status) > 0 {
		rev += "-dirty"
	}
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if epoch == "" {
		raw, err := exec.Command("git", "log", "-1", "--format=%ct").Output()
		if err != nil {
			return "", time.Time{}, fmt.Errorf("git log: %w", err)
		}
		epoch = strings.TrimSpace(string(raw))
	}
	seconds, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", epoch, err)
	}
	return rev, time.Unix(seconds, 0).UTC(), nil
}
