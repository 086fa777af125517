package health_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/grpcmgmt/grpcmgmt/health"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// probeModule is the grpc_health_probe release the test runs: the tool
// Kubernetes users run as an exec readiness probe.
const probeModule = "github.com/grpc-ecosystem/grpc-health-probe@v0.4.61"

// buildProbe builds grpc_health_probe into a temporary directory with the
// go command (from the module cache, or the module proxy).
func buildProbe(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build %s: %v", probeModule, err)
	}
	dir := t.TempDir()
	cmd := exec.Command(goBin, "install", probeModule)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=-buildvcs=false", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install %s: %v\n%s", probeModule, err, out)
	}
	return filepath.Join(dir, "grpc-health-probe")
}

// probe runs grpc_health_probe against addr and returns its exit code and
// output.
func probe(t *testing.T, bin, addr string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, "-addr="+addr, "-connect-timeout=5s", "-rpc-timeout=5s")
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String()
	}
	t.Fatalf("running %s: %v", bin, err)
	return 0, ""
}

// grpc_health_probe, as a Kubernetes exec probe runs it, fails against a
// replica that turned NOT_SERVING for load or for a drain, and succeeds
// against a SERVING one.
func TestGRPCHealthProbe(t *testing.T) {
	bin := buildProbe(t)
	cpu := &signal{}
	cpu.Set(0.2)
	n := startNode(t, nodeConfig{
		addr: "127.0.0.1:0", replica: replica.Config{Name: "a"}, load: fastLoad(cpu),
		health: health.Config{
			Hold: 50 * time.Millisecond, MinDwell: 50 * time.Millisecond, MaxNotServing: time.Minute,
			Cooldown: 10 * time.Millisecond, PropagationDelay: 10 * time.Millisecond,
		},
	})
	r := n.m.Health()
	const unhealthy = 4 // grpc_health_probe's exit code for a status other than SERVING
	if code, out := probe(t, bin, n.addr); code != 0 {
		t.Errorf("probe against a SERVING replica exited %d, want 0:\n%s", code, out)
	}
	cpu.Set(0.95)
	waitStatus(t, r, notServing)
	if code, out := probe(t, bin, n.addr); code != unhealthy {
		t.Errorf("probe against a replica NOT_SERVING for load exited %d, want %d:\n%s", code, unhealthy, out)
	}
	cpu.Set(0.1)
	waitStatus(t, r, serving)
	if code, out := probe(t, bin, n.addr); code != 0 {
		t.Errorf("probe against a recovered replica exited %d, want 0:\n%s", code, out)
	}
	r.BeginDrain()
	if code, out := probe(t, bin, n.addr); code != unhealthy {
		t.Errorf("probe against a draining replica exited %d, want %d:\n%s", code, unhealthy, out)
	}
}
