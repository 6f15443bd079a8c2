//go:build docs

// Package docs runs the documentation's shell blocks marked runnable
// (```sh runnable) as written, against the cluster of `make demo`.
package docs

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type block struct {
	file string
	line int
	text string
}

// runnable finds the blocks fenced ```sh runnable in the README and docs/.
func runnable(t *testing.T, root string) []block {
	var files []string
	files = append(files, filepath.Join(root, "README.md"))
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var blocks []block
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var current *block
		for i, line := range strings.Split(string(raw), "\n") {
			switch {
			case current == nil && strings.TrimSpace(line) == "```sh runnable":
				rel, _ := filepath.Rel(root, file)
				current = &block{file: rel, line: i + 1}
			case current != nil && strings.TrimSpace(line) == "```":
				blocks = append(blocks, *current)
				current = nil
			case current != nil:
				current.text += line + "\n"
			}
		}
		if current != nil {
			t.Fatalf("%s:%d: a runnable block is not closed", current.file, current.line)
		}
	}
	return blocks
}

func TestRunnableBlocksRunAgainstTheDemo(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	blocks := runnable(t, root)
	if len(blocks) < 4 {
		t.Fatalf("found %d runnable blocks, want the README's and the guides'", len(blocks))
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("run with `make test-docs`")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	demo := exec.CommandContext(ctx, filepath.Join(root, "bin", "exokey-demo"))
	demo.Dir = root
	demo.Env = append(os.Environ(), "KUBEBUILDER_ASSETS="+assets)
	demo.Cancel = func() error { return demo.Process.Signal(os.Interrupt) }
	demo.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	demo.Stderr = os.Stderr
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = demo.Process.Signal(os.Interrupt)
		_ = demo.Wait()
	}()
	up := make(chan bool, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		signalled := false
		for scanner.Scan() {
			if !signalled && strings.HasPrefix(scanner.Text(), "Try more with kubectl") {
				up <- true
				signalled = true
			}
		}
		if !signalled {
			up <- false
		}
	}()
	select {
	case ok := <-up:
		if !ok {
			t.Fatal("the demo ended before it was up")
		}
	case <-time.After(10 * time.Minute):
		t.Fatal("the demo was not up within 10 minutes")
	}

	env := append(os.Environ(),
		"KUBECONFIG="+filepath.Join(root, "bin", "demo", "kubeconfig"),
		"PATH="+filepath.Join(root, "bin")+":"+assets+":"+os.Getenv("PATH"))
	for _, b := range blocks {
		blockCtx, cancelBlock := context.WithTimeout(ctx, 3*time.Minute)
		cmd := exec.CommandContext(blockCtx, "bash", "-euo", "pipefail", "-c", b.text)
		cmd.Dir, cmd.Env = root, env
		out, err := cmd.CombinedOutput()
		cancelBlock()
		if err != nil {
			t.Errorf("%s:%d: %v\n%s\n--- output:\n%s", b.file, b.line, err, b.text, out)
			continue
		}
		t.Logf("%s:%d ran:\n%s", b.file, b.line, out)
	}
}
