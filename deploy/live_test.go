package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
)

// testPodName stands in for the downward-API value of metadata.name.
const testPodName = "grpcmgmt-server-7d9c-abcde"

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// podArgs returns c's args as the kubelet would pass them, with $(VAR)
// expanded from c's env (downward-API values stood in for) and every
// -name=value in override replaced.
func podArgs(t *testing.T, c *corev1.Container, override map[string]string) []string {
	t.Helper()
	vars := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			vars[e.Name] = testPodName
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP":
			vars[e.Name] = "127.0.0.1"
		case e.ValueFrom == nil:
			vars[e.Name] = e.Value
		default:
			t.Fatalf("container %s: env %s: no stand-in for %+v", c.Name, e.Name, e.ValueFrom)
		}
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	var out []string
	seen := map[string]bool{}
	for _, a := range c.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if v, ok := override[name]; ok {
			a = "-" + name + "=" + v
			seen[name] = true
		}
		out = append(out, ref.ReplaceAllStringFunc(a, func(m string) string { return vars[m[2:len(m)-1]] }))
	}
	for name, v := range override {
		if !seen[name] {
			out = append(out, "-"+name+"="+v)
		}
	}
	return out
}

// podUser runs a process as the pod's runAsUser/runAsGroup when the test
// runs as root (as the kubelet would), so that a port or file only root may
// use fails here too. Run as another user, the test is non-root already.
func podUser(t *testing.T, pod corev1.PodSpec) *syscall.SysProcAttr {
	t.Helper()
	if os.Geteuid() != 0 {
		return nil
	}
	sc := pod.SecurityContext
	if sc == nil || sc.RunAsUser == nil || sc.RunAsGroup == nil {
		t.Fatal("pod securityContext without runAsUser and runAsGroup")
	}
	return &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(*sc.RunAsUser), Gid: uint32(*sc.RunAsGroup)}}
}

// syncBuffer collects a process's output for the test log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServerAsTheKubeletSeesIt starts examples/server with the manifest's
// own arguments (only the listen addresses moved to loopback ports) and
// does what the kubelet and the Services do to it: the liveness connect, the
// readiness grpc probe, a Prometheus scrape, the documented client's calls,
// and a termination (SIGTERM after the preStop), timed against the budget
// the manifest gives it.
func TestServerAsTheKubeletSeesIt(t *testing.T) {
	f := loadFleet(t)
	c := container(t, f.server, serverContainer)
	flags := usage(t, "server")
	args := commandLine(t, c, flags)
	grpcAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))

	pod := f.server.Spec.Template.Spec
	budget := time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second -
		time.Duration(c.Lifecycle.PreStop.Sleep.Seconds)*time.Second
	lameDuck := lameDuckDelay(t, flags, args)
	readiness := probeWindow(c.ReadinessProbe)

	srvOut := &syncBuffer{}
	srv := exec.Command(binary(t, "server"), podArgs(t, c, map[string]string{"listen": grpcAddr, "metrics-listen": metricsAddr})...)
	srv.Stdout, srv.Stderr = srvOut, srvOut
	srv.SysProcAttr = podUser(t, pod)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = srv.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("server output:\n%s", srvOut.String())
		}
	}()

	t.Run("liveness", func(t *testing.T) {
		// The kubelet's tcpSocket probe: a TCP connect to the grpc port.
		waitFor(t, 10*time.Second, "the liveness probe's TCP connect", func() error {
			conn, err := net.DialTimeout("tcp", grpcAddr, time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		})
	})

	cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	health := healthpb.NewHealthClient(cc)
	service := ""
	if s := c.ReadinessProbe.GRPC.Service; s != nil {
		service = *s
	}

	healthServed := true
	t.Run("readiness", func(t *testing.T) {
		// grpc.health.v1 Check, as the kubelet's grpc probe sends it, must
		// answer SERVING. UNIMPLEMENTED (no health service) fails the probe
		// too: the pod would never become ready.
		waitFor(t, 10*time.Second, "the readiness probe (grpc.health.v1 Check = SERVING)", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(c.ReadinessProbe.TimeoutSeconds, 1))*time.Second)
			defer cancel()
			resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: service})
			if status.Code(err) == codes.Unimplemented {
				healthServed = false
				t.Fatalf("examples/server does not serve grpc.health.v1, so the kubelet's readiness probe can never pass and the pods never become ready: %v", err)
			}
			if err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("status %v", resp.GetStatus())
			}
			return nil
		})
	})

	t.Run("metrics", func(t *testing.T) {
		// The scrape the pod annotations advertise.
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Get("http://" + metricsAddr + f.server.Spec.Template.Annotations["prometheus.io/path"])
		if err != nil {
			t.Fatalf("scraping metrics: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("# TYPE")) {
			t.Errorf("metrics scrape: %s, %d bytes, want 200 with Prometheus text", resp.Status, len(body))
		}
	})

	t.Run("client", func(t *testing.T) { runClient(t, f, grpcAddr) })

	t.Run("termination", func(t *testing.T) {
		// The kubelet sends SIGTERM after the preStop. Watch the health
		// status and the connection: the status must turn NOT_SERVING
		// first, the GOAWAY (the connection leaving READY) must follow no
		// sooner than the readiness window, and the process must exit,
		// cleanly, within the rest of terminationGracePeriodSeconds.
		ctx, cancel := context.WithTimeout(context.Background(), budget+5*time.Second)
		defer cancel()
		cc.Connect()
		for s := cc.GetState(); s != connectivity.Ready; s = cc.GetState() {
			if !cc.WaitForStateChange(ctx, s) {
				t.Fatal("client connection never READY")
			}
		}
		watchCtx, stopWatch := context.WithCancel(ctx)
		defer stopWatch()
		notServing := make(chan time.Time, 1)
		if healthServed {
			watch, err := health.Watch(watchCtx, &healthpb.HealthCheckRequest{Service: service})
			if err != nil {
				t.Fatal(err)
			}
			if first, err := watch.Recv(); err != nil || first.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health Watch before SIGTERM: %v, %v; want SERVING", first.GetStatus(), err)
			}
			go func() {
				for {
					m, err := watch.Recv()
					if err != nil {
						return
					}
					if m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
						notServing <- time.Now()
						return
					}
				}
			}()
		}

		sigterm := time.Now()
		if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if !cc.WaitForStateChange(ctx, connectivity.Ready) {
			t.Fatalf("no GOAWAY within %v of SIGTERM", budget)
		}
		goAway := time.Now()
		stopWatch() // the lame duck is over; let GracefulStop finish
		var flipped time.Time
		select {
		case flipped = <-notServing:
		default:
			if healthServed {
				t.Errorf("the server sent GOAWAY %v after SIGTERM without turning NOT_SERVING first", goAway.Sub(sigterm).Round(time.Millisecond))
			}
		}
		select {
		case err := <-exited:
			stopped = true
			if err != nil {
				t.Errorf("server exited with %v after SIGTERM: Manager.Shutdown did not finish cleanly", err)
			}
		case <-ctx.Done():
			t.Fatalf("server still running %v after SIGTERM; the kubelet SIGKILLs it at %v", time.Since(sigterm).Round(time.Millisecond), budget)
		}
		exit := time.Since(sigterm)
		if exit > budget {
			t.Errorf("server took %v to exit after SIGTERM; terminationGracePeriodSeconds - preStop leaves %v", exit, budget)
		}
		if flipped.IsZero() {
			t.Logf("SIGTERM → GOAWAY %v, → exit %v (no health status to watch)", goAway.Sub(sigterm).Round(time.Millisecond), exit.Round(time.Millisecond))
			return
		}
		measured := goAway.Sub(flipped)
		t.Logf("SIGTERM → NOT_SERVING %v, → GOAWAY %v (lame-duck delay %v), → exit %v",
			flipped.Sub(sigterm).Round(time.Millisecond), goAway.Sub(sigterm).Round(time.Millisecond), measured.Round(time.Millisecond), exit.Round(time.Millisecond))
		if measured < readiness {
			t.Errorf("lame-duck delay measured %v < readiness window %v: the server sends GOAWAY while the kubelet may still count the pod ready", measured, readiness)
		}
		if d := measured - lameDuck; d < -500*time.Millisecond || d > 2*time.Second {
			t.Errorf("lame-duck delay measured %v, but the timing checks use %v: set the server's delay flag in the manifest or update assumedLameDuckDelay and docs/kubernetes.md", measured, lameDuck)
		}
	})
}

// runClient runs examples/client with the manifest's own arguments against
// the server for two seconds and checks that every call succeeded and the
// replica answered under its pod name.
func runClient(t *testing.T, f *fleet, grpcAddr string) {
	t.Helper()
	cc := container(t, f.client, clientContainer)
	cmd := exec.Command(binary(t, "client"), podArgs(t, cc, map[string]string{
		"target":   "dns:///" + grpcAddr, // the headless name, resolved here to the one pod
		"duration": "2s",
	})...)
	cmd.SysProcAttr = podUser(t, f.client.Spec.Template.Spec)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	calls := 0
	line := regexp.MustCompile(`^t=\s*\d+s(.*)errors=(\d+)`)
	count := regexp.MustCompile(`(\S+)=(\d+)`)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if m[2] != "0" {
			t.Errorf("client: %s", sc.Text())
		}
		for _, c := range count.FindAllStringSubmatch(m[1], -1) {
			if c[1] != testPodName {
				t.Errorf("client: calls answered by %q, want the pod name %q", c[1], testPodName)
			}
			n, _ := strconv.Atoi(c[2])
			calls += n
		}
	}
	if calls == 0 {
		t.Errorf("client made no successful call:\n%s", out)
	}
}

// waitFor polls cond until it returns nil or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
