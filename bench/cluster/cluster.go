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
	// Root is the module root (for building binaries and finding test/node).
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

// Build compiles the module's package pkg (e.g. "./examples/server") into
// Dir and returns the binary's path.
func (c *Cluster) Build(pkg string) (string, error) {
	out := filepath.Join(c.Dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = c.Root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

func moduleRoot() (string, error) {
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(b))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("cluster: not inside the grpcmgmt module")
	}
	return filepath.Dir(gomod), nil
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
