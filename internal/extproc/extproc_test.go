package extproc_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt/internal/extproc"
	"github.com/grpcmgmt/grpcmgmt/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// A helper that exits on its own can be awaited and killed any number of
// times without blocking (a dnsmasq or HAProxy that fails at start must not
// hang a test's cleanup).
func TestProcessExitAwaitedTwice(t *testing.T) {
	p, err := extproc.Start("/bin/false", nil, filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("process did not exit")
	}
	if p.Err() == nil {
		t.Error("exit status of /bin/false not reported")
	}
	done := make(chan struct{})
	go func() { p.Kill(); p.Kill(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("kill after exit blocked")
	}
}
