package cluster

import (
	"path/filepath"
	"testing"
	"time"
)

// A helper that exits on its own can be awaited and killed any number of
// times without blocking (a dnsmasq or HAProxy that fails at start must not
// hang Cluster.Close).
func TestProcessExitAwaitedTwice(t *testing.T) {
	p, err := startProcess("/bin/false", nil, filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("process did not exit")
	}
	if p.err == nil {
		t.Error("exit status of /bin/false not reported")
	}
	done := make(chan struct{})
	go func() { p.kill(); p.kill(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("kill after exit blocked")
	}
}
