package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/grpcmgmt/grpcmgmt/internal/dnsmasq"
	"github.com/grpcmgmt/grpcmgmt/internal/extproc"
	"github.com/grpcmgmt/grpcmgmt/internal/loopback"
)

// Cluster owns the processes and files of one scenario run.
type Cluster struct {
	// Dir holds binaries, configs and logs.
	Dir string
	// Root is the repository root, the library module's directory (for
	// building binaries and finding test/node).
	Root string
	// ReplicaEnv is added to the environment of replicas started after it
	// is set (e.g. GOMAXPROCS=1: a replica with a one-CPU allowance).
	ReplicaEnv []string

	mu      sync.Mutex
	closers []func()

	javaOnce sync.Once // compiles the Java client (external.go)
	javaCP   string
	javaErr  error
}

// New creates a cluster working in dir.
func New(dir string) (*Cluster, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	return &Cluster{Dir: dir, Root: root}, nil
}

// onClose registers fn to run at Close, last registered first.
func (c *Cluster) onClose(fn func()) {
	c.mu.Lock()
	c.closers = append(c.closers, fn)
	c.mu.Unlock()
}

// Close stops everything the cluster started. It is idempotent.
func (c *Cluster) Close() {
	c.mu.Lock()
	closers := c.closers
	c.closers = nil
	c.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i]()
	}
}

// Build compiles the repository's package pkg (e.g. "./examples/server",
// a path from Root) into Dir and returns the binary's path.
func (c *Cluster) Build(pkg string) (string, error) {
	out := filepath.Join(c.Dir, filepath.Base(pkg))
	cmd, err := c.GoCommand("build", []string{"-o", out}, pkg)
	if err != nil {
		return "", err
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

// GoCommand returns `go verb flags... pkg args...` for the repository's
// package pkg (a path from Root), run in the directory of the module that
// holds it: the library's packages are in the root module, examples/ and
// bench/ are modules of their own (issue 14).
func (c *Cluster) GoCommand(verb string, flags []string, pkg string, args ...string) (*exec.Cmd, error) {
	dir, rel, err := moduleOf(c.Root, pkg)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("go", append(append(append([]string{verb}, flags...), rel), args...)...)
	cmd.Dir = dir
	return cmd, nil
}

// moduleOf returns the directory of the module under root that holds pkg
// (a path from root) and pkg's path from that directory.
func moduleOf(root, pkg string) (dir, rel string, err error) {
	abs := filepath.Join(root, pkg)
	for dir = abs; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		if dir == root || dir == filepath.Dir(dir) {
			return "", "", fmt.Errorf("cluster: no go.mod above %s", abs)
		}
	}
	r, err := filepath.Rel(dir, abs)
	if err != nil {
		return "", "", err
	}
	rel = "./" + filepath.ToSlash(r)
	if strings.HasSuffix(pkg, "/") {
		rel += "/"
	}
	return dir, rel, nil
}

// libraryModule is the module path of the repository's root go.mod.
const libraryModule = "github.com/grpcmgmt/grpcmgmt"

// moduleRoot returns the repository root: the directory of the go.mod of
// libraryModule, at or above the current module's (bench/ is a module of
// its own, inside the repository).
func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("cluster: not inside the grpcmgmt repository")
	}
	for dir := filepath.Dir(gomod); ; dir = filepath.Dir(dir) {
		if f, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && modulePath(f) == libraryModule {
			return dir, nil
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("cluster: no go.mod of %s at or above %s", libraryModule, gomod)
		}
	}
}

// modulePath returns the path on a go.mod's module line.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// Require returns an error naming every external program the scenarios
// need that is missing, with the command that installs them.
func Require(names ...string) error {
	if err := extproc.Require(names...); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// lookPath finds a program on PATH or in /usr/sbin.
func lookPath(name string) (string, error) { return extproc.LookPath(name) }

// FreePort returns a TCP port free on every one of ips.
func FreePort(ips ...string) (int, error) { return loopback.FreePort(ips...) }

// FreeUDPPort returns a UDP port free on ip.
func FreeUDPPort(ip string) (int, error) { return dnsmasq.FreeUDPPort(ip) }
