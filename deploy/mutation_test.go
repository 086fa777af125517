package deploy

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// recorder stands in for a *testing.T so a check can be run against a
// broken fleet and its complaints collected instead of failing the test.
type recorder struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, s)
}

func (r *recorder) Helper()                   {}
func (r *recorder) Log(...any)                {}
func (r *recorder) Logf(string, ...any)       {}
func (r *recorder) Error(args ...any)         { r.add(fmt.Sprint(args...)) }
func (r *recorder) Errorf(f string, a ...any) { r.add(fmt.Sprintf(f, a...)) }
func (r *recorder) Fatal(args ...any)         { r.add(fmt.Sprint(args...)); runtime.Goexit() }
func (r *recorder) Fatalf(f string, a ...any) { r.add(fmt.Sprintf(f, a...)); runtime.Goexit() }
func (r *recorder) Failed() bool              { r.mu.Lock(); defer r.mu.Unlock(); return len(r.msgs) > 0 }

// complaints runs check on f and returns what it reported.
func complaints(t *testing.T, check func(testing.TB, *fleet), f *fleet) []string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r, f)
	}()
	<-done
	return r.msgs
}

// TestChecksCatchMistakes breaks the real manifests one way at a time, the
// ways they are likely to break when edited, and requires the matching
// check to say so. Without it, a check that can never fail would go
// unnoticed.
func TestChecksCatchMistakes(t *testing.T) {
	server := func(f *fleet) *corev1.Container { return container(t, f.server, serverContainer) }
	setArg := func(c *corev1.Container, name, value string) {
		for i, a := range c.Args {
			if strings.HasPrefix(a, "-"+name+"=") {
				c.Args[i] = "-" + name + "=" + value
				return
			}
		}
		c.Args = append(c.Args, "-"+name+"="+value)
	}
	ptr := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name   string
		check  func(testing.TB, *fleet)
		break_ func(*fleet)
		want   string
	}{
		{"server flag the binary lacks", checkServerArgsAreServerFlags,
			func(f *fleet) { setArg(server(f), "max-conection-age", "1m") }, "is not a flag of its binary"},
		{"server flag with a bad value", checkServerArgsAreServerFlags,
			func(f *fleet) { setArg(server(f), "shutdown-timeout", "40") }, "not a valid duration"},
		{"undefined env reference", checkServerArgsAreServerFlags,
			func(f *fleet) { setArg(server(f), "name", "$(HOSTNAME)") }, "does not define"},
		{"client flag the binary lacks", checkClientArgsAreClientFlags,
			func(f *fleet) {
				f.client.Spec.Template.Spec.Containers[0].Args = append(f.client.Spec.Template.Spec.Containers[0].Args, "-balancer=round_robin")
			}, "is not a flag"},
		{"listen on loopback only", checkPortsAgree,
			func(f *fleet) { setArg(server(f), "listen", "127.0.0.1:50051") }, "listens on 127.0.0.1 only"},
		{"container port differs from -listen", checkPortsAgree,
			func(f *fleet) { server(f).Ports[0].ContainerPort = 8080 }, "-listen port"},
		{"readiness probe on another port", checkPortsAgree,
			func(f *fleet) { server(f).ReadinessProbe.GRPC.Port = 50052 }, "readiness grpc.port"},
		{"metrics on every interface", checkPortsAgree,
			func(f *fleet) { setArg(server(f), "metrics-listen", ":9090") }, "every interface"},
		{"metrics on an env var that is not the pod IP", checkPortsAgree,
			func(f *fleet) { setArg(server(f), "metrics-listen", "$(POD_NAME):9090") }, "status.podIP"},
		{"metrics annotation differs", checkPortsAgree,
			func(f *fleet) { f.server.Spec.Template.Annotations["prometheus.io/port"] = "8080" }, "prometheus.io/port"},
		{"Service targets a missing port name", checkPortsAgree,
			func(f *fleet) { f.clusterIP.Spec.Ports[0].TargetPort = intstr.FromString("http") }, "no port named"},
		{"client dials the ClusterIP Service", checkClientDialsTheHeadlessService,
			func(f *fleet) {
				setArg(&f.client.Spec.Template.Spec.Containers[0], "target", "dns:///grpcmgmt-server.grpcmgmt.svc.cluster.local:50051")
			}, "want dns:///grpcmgmt-server-headless"},
		{"headless Service publishes not-ready pods", checkClientDialsTheHeadlessService,
			func(f *fleet) { f.headless.Spec.PublishNotReadyAddresses = true }, "not-ready"},
		{"Service selects the client pods too", checkSelectorsAgree,
			func(f *fleet) { f.headless.Spec.Selector = map[string]string{"app.kubernetes.io/part-of": "grpcmgmt"} }, "matches pods"},
		{"PDB selects nothing", checkSelectorsAgree,
			func(f *fleet) { f.pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] = "server" }, "PodDisruptionBudget"},
		{"HPA scales another Deployment", checkSelectorsAgree,
			func(f *fleet) { f.hpa.Spec.ScaleTargetRef.Name = "grpcmgmt" }, "scaleTargetRef"},
		{"liveness on the load-flipped health status", checkProbes,
			func(f *fleet) {
				c := server(f)
				c.LivenessProbe.TCPSocket, c.LivenessProbe.GRPC = nil, &corev1.GRPCAction{Port: 50051}
			}, "never the overall health status"},
		{"readiness probe over HTTP", checkProbes,
			func(f *fleet) {
				c := server(f)
				c.ReadinessProbe.GRPC, c.ReadinessProbe.HTTPGet = nil, &corev1.HTTPGetAction{Port: intstr.FromInt32(9090)}
			}, "native grpc probe"},
		{"readiness slower than the lame duck", checkTerminationTimings,
			func(f *fleet) { server(f).ReadinessProbe.PeriodSeconds = 10 }, "readiness window"},
		{"SIGKILL inside the drain", checkTerminationTimings,
			func(f *fleet) { f.server.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr(30) }, "SIGKILL"},
		{"shutdown timeout shorter than the grace", checkTerminationTimings,
			func(f *fleet) { setArg(server(f), "shutdown-timeout", "20s") }, "cuts calls"},
		{"grace raised past the budget", checkTerminationTimings,
			func(f *fleet) { setArg(server(f), "max-connection-age-grace", "60s") }, "SIGKILL lands inside the drain"},
		{"grace left at the library default is still counted", checkTerminationTimings,
			func(f *fleet) {
				c := server(f)
				var kept []string
				for _, a := range c.Args {
					if !strings.HasPrefix(a, "-max-connection-age-grace=") {
						kept = append(kept, a)
					}
				}
				c.Args = kept
				f.server.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr(39)
			}, "+ grace 30s"},
		{"preStop through a shell", checkTerminationTimings,
			func(f *fleet) {
				server(f).Lifecycle.PreStop = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"sh", "-c", "sleep 5"}}}
			}, "no shell"},
		{"two replicas", checkReplicasAndDisruption,
			func(f *fleet) { two := int32(2); f.server.Spec.Replicas = &two }, "want >= 3"},
		{"PDB that allows every pod out", checkReplicasAndDisruption,
			func(f *fleet) { mu := intstr.FromInt32(3); f.pdb.Spec.MaxUnavailable = &mu }, "maxUnavailable"},
		{"CPU request below the limit", checkResourcesAndAutoscaling,
			func(f *fleet) { server(f).Resources.Requests[corev1.ResourceCPU] = resource.MustParse("500m") }, "would disagree"},
		{"no memory limit", checkResourcesAndAutoscaling,
			func(f *fleet) {
				delete(f.client.Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory)
			}, "memory request and limit"},
		{"HPA target at 100 %", checkResourcesAndAutoscaling,
			func(f *fleet) { v := int32(100); f.hpa.Spec.Metrics[0].Resource.Target.AverageUtilization = &v }, "CPU Utilization target"},
		{"root user", checkPodSecurity,
			func(f *fleet) { f.client.Spec.Template.Spec.SecurityContext.RunAsUser = ptr(0) }, "runAsUser must be"},
		{"Service name that is not a DNS label", checkNamesTheAPIServerAccepts,
			func(f *fleet) { f.clusterIP.Name = "grpcmgmt.server" }, "Service name"},
		{"port name too long", checkNamesTheAPIServerAccepts,
			func(f *fleet) { server(f).Ports[1].Name = "prometheus-metrics" }, "port name"},
		{"liveness successThreshold 2", checkNamesTheAPIServerAccepts,
			func(f *fleet) { server(f).LivenessProbe.SuccessThreshold = 2 }, "successThreshold must be 1"},
		{"wrong namespace", checkEverythingInOneNamespace,
			func(f *fleet) { f.pdb.Namespace = "default" }, "namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := loadFleet(t)
			if got := complaints(t, tc.check, f); len(got) > 0 {
				t.Fatalf("the real manifests already fail this check: %q", got)
			}
			tc.break_(f)
			got := complaints(t, tc.check, f)
			for _, m := range got {
				if strings.Contains(m, tc.want) {
					return
				}
			}
			t.Errorf("check did not catch it: want a complaint containing %q, got %q", tc.want, got)
		})
	}
}

// TestDockerfileChecksCatchMistakes does the same for the Dockerfile.
func TestDockerfileChecksCatchMistakes(t *testing.T) {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	good := string(data)
	f := loadFleet(t)
	check := func(text string) func(testing.TB, *fleet) {
		return func(t testing.TB, f *fleet) { checkDockerfile(t, text, f) }
	}
	if got := complaints(t, check(good), f); len(got) > 0 {
		t.Fatalf("the real Dockerfile already fails: %q", got)
	}
	for _, tc := range []struct{ name, old, new, want string }{
		{"single stage", "FROM gcr.io/distroless/static-debian12:nonroot\nCOPY --from=build /out/app /app\n", "", "multi-stage"},
		{"final image with a shell", "gcr.io/distroless/static-debian12:nonroot", "debian:12", "want distroless static or scratch"},
		{"runs as root", "USER 65532:65532", "USER root", "numeric uid"},
		{"uid 0", "USER 65532:65532", "USER 0", "USER is root"},
		{"no USER", "USER 65532:65532\n", "", "would run as root"},
		{"shell-form entrypoint", `ENTRYPOINT ["/app"]`, "ENTRYPOINT /app", "exec form"},
		{"cgo on", "CGO_ENABLED=0 ", "", "CGO_ENABLED=0"},
		{"Go older than go.mod", "ARG GO_VERSION=1.26", "ARG GO_VERSION=1.22", "GO_VERSION"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(good, tc.old) {
				t.Fatalf("the Dockerfile no longer contains %q; update this case", tc.old)
			}
			got := complaints(t, check(strings.Replace(good, tc.old, tc.new, 1)), f)
			for _, m := range got {
				if strings.Contains(m, tc.want) {
					return
				}
			}
			t.Errorf("check did not catch it: want a complaint containing %q, got %q", tc.want, got)
		})
	}
	// A manifest running an image this Dockerfile does not build.
	f.client.Spec.Template.Spec.Containers[0].Image = "ghcr.io/example/loadgen:1"
	if got := complaints(t, check(good), f); len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "not one this Dockerfile builds") {
		t.Errorf("foreign image not caught: %q", got)
	}
}
