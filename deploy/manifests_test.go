package deploy

import (
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Timings of the cluster the manifests are written for, which no manifest
// states. docs/kubernetes.md ("Timings that must agree") explains them.
const (
	// endpointPropagation: a removed endpoint reaches kube-proxy's rules
	// within about 1 s (its minimum sync period) and CoreDNS's answers
	// within their TTL (5 s, the kubernetes plugin's default).
	endpointPropagation = 6 * time.Second
	// assumedLameDuckDelay is what Manager.Shutdown waits between health
	// NOT_SERVING and the first GOAWAY when the server has no flag for it:
	// the health lever's default (health.DefaultPropagationDelay, 10 s; see
	// docs/kubernetes.md). live_test.go measures the real delay and fails
	// when it differs.
	assumedLameDuckDelay = 10 * time.Second
)

// lameDuckFlag matches the name of a server flag that sets the lame-duck
// propagation delay, whatever it ends up being called.
var lameDuckFlag = regexp.MustCompile(`lame-?duck|propagation|drain-delay`)

// commandLine checks a container's args against the flags its binary
// defines and returns them by name. $(VAR) references must name a variable
// the container defines (Kubernetes leaves unknown ones as they are).
func commandLine(t testing.TB, c *corev1.Container, flags map[string]Flag) Args {
	t.Helper()
	if len(c.Command) > 0 {
		t.Errorf("container %s: command %q overrides the image's ENTRYPOINT; pass flags in args", c.Name, c.Command)
	}
	args, err := ParseArgs(c.Args)
	if err != nil {
		t.Fatalf("container %s: %v", c.Name, err)
	}
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = true
	}
	ref := regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)
	for name, value := range args {
		f, ok := flags[name]
		if !ok {
			t.Errorf("container %s: -%s is not a flag of its binary (it has: %s)", c.Name, name, strings.Join(slices.Sorted(mapKeys(flags)), ", "))
			continue
		}
		for _, m := range ref.FindAllStringSubmatch(value, -1) {
			if !env[m[1]] {
				t.Errorf("container %s: -%s=%s refers to $(%s), which the container does not define", c.Name, name, value, m[1])
			}
		}
		if ref.MatchString(value) {
			continue // its value is only known in the pod
		}
		if err := f.CheckValue(value); err != nil {
			t.Errorf("container %s: %v", c.Name, err)
		}
	}
	return args
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// duration returns the value the server uses for a duration flag: the
// manifest's, else the default it prints.
func duration(t testing.TB, flags map[string]Flag, args Args, name string) time.Duration {
	t.Helper()
	f, ok := flags[name]
	if !ok {
		t.Fatalf("the server has no -%s flag", name)
	}
	v, set := args[name]
	d, err := f.DurationValue(v, set)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// lameDuckDelay returns the server's lame-duck propagation delay: its
// flag's value where the server has one, else assumedLameDuckDelay.
func lameDuckDelay(t testing.TB, flags map[string]Flag, args Args) time.Duration {
	t.Helper()
	var names []string
	for name := range flags {
		if lameDuckFlag.MatchString(name) {
			names = append(names, name)
		}
	}
	switch len(names) {
	case 0:
		t.Logf("examples/server has no lame-duck delay flag; assuming the library default %v (docs/kubernetes.md)", assumedLameDuckDelay)
		return assumedLameDuckDelay
	case 1:
		return duration(t, flags, args, names[0])
	}
	t.Fatalf("several server flags look like the lame-duck delay: %v", names)
	return 0
}

// probeWindow is the longest a probe can take to report a change: the next
// probe starts within one period, and failureThreshold failures in a row,
// the last one after up to timeoutSeconds, are needed. Zero fields are the
// API server's defaults.
func probeWindow(p *corev1.Probe) time.Duration {
	period, failures, timeout := p.PeriodSeconds, p.FailureThreshold, p.TimeoutSeconds
	if period == 0 {
		period = 10
	}
	if failures == 0 {
		failures = 3
	}
	if timeout == 0 {
		timeout = 1
	}
	return time.Duration(period*failures+timeout) * time.Second
}

// listenPort returns the port of a host:port flag value and checks that it
// listens on every interface (the kubelet probes and Services reach the pod
// on its pod IP, not on loopback).
func listenPort(t testing.TB, flag, value string) int32 {
	t.Helper()
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		t.Fatalf("-%s=%s: %v", flag, value, err)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("-%s=%s listens on %s only; the kubelet and Services connect to the pod IP: use :%s", flag, value, host, port)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil || n <= 0 || n > 65535 {
		t.Fatalf("-%s=%s: bad port", flag, value)
	}
	return int32(n)
}

// metricsListenPort checks that -metrics-listen binds the pod's own IP
// ($(VAR) from the downward API's status.podIP), where Prometheus scrapes
// it, and not every interface of the pod (with hostNetwork, the node's),
// and returns its port.
func metricsListenPort(t testing.TB, c *corev1.Container, value string) int32 {
	t.Helper()
	host, port, err := net.SplitHostPort(value)
	if err != nil {
		t.Fatalf("-metrics-listen=%s: %v", value, err)
	}
	ref := regexp.MustCompile(`^\$\(([A-Za-z_][A-Za-z0-9_]*)\)$`).FindStringSubmatch(host)
	switch {
	case host == "" || host == "0.0.0.0" || host == "::":
		t.Errorf("-metrics-listen=%s serves metrics on every interface: bind the pod IP, $(POD_IP) from the downward API's status.podIP", value)
	case ref != nil:
		fromPodIP := false
		for _, e := range c.Env {
			if e.Name == ref[1] && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.podIP" {
				fromPodIP = true
			}
		}
		if !fromPodIP {
			t.Errorf("-metrics-listen=%s: $(%s) must come from the downward API's status.podIP", value, ref[1])
		}
	default:
		t.Errorf("-metrics-listen=%s: Prometheus scrapes the pod IP; bind $(POD_IP) (status.podIP)", value)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil || n <= 0 || n > 65535 {
		t.Fatalf("-metrics-listen=%s: bad port", value)
	}
	return int32(n)
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs, err := LoadDir(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, o := range objs {
		got[o.Kind]++
		if o.Name() == "" {
			t.Errorf("%v: no metadata.name", o)
		}
	}
	want := map[string]int{"Namespace": 1, "Deployment": 2, "Service": 2, "PodDisruptionBudget": 1, "HorizontalPodAutoscaler": 1}
	for kind, n := range want {
		if got[kind] != n {
			t.Errorf("%d %s objects, want %d", got[kind], kind, n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("kinds %v, want %v", got, want)
	}
}

func TestEverythingInOneNamespace(t *testing.T) { checkEverythingInOneNamespace(t, loadFleet(t)) }

func checkEverythingInOneNamespace(t testing.TB, f *fleet) {
	for _, o := range f.objs {
		if o.Kind == "Namespace" {
			continue
		}
		if o.Namespace() != f.namespace.Name {
			t.Errorf("%v: namespace %q, want %q (the Namespace manifest)", o, o.Namespace(), f.namespace.Name)
		}
	}
}

func TestServerArgsAreServerFlags(t *testing.T) { checkServerArgsAreServerFlags(t, loadFleet(t)) }

func checkServerArgsAreServerFlags(t testing.TB, f *fleet) {
	commandLine(t, container(t, f.server, serverContainer), usage(t, "server"))
}

func TestClientArgsAreClientFlags(t *testing.T) { checkClientArgsAreClientFlags(t, loadFleet(t)) }

func checkClientArgsAreClientFlags(t testing.TB, f *fleet) {
	commandLine(t, container(t, f.client, clientContainer), usage(t, "client"))
}

func TestPortsAgree(t *testing.T) { checkPortsAgree(t, loadFleet(t)) }

func checkPortsAgree(t testing.TB, f *fleet) {
	c := container(t, f.server, serverContainer)
	args := commandLine(t, c, usage(t, "server"))

	grpcPort := listenPort(t, "listen", args["listen"])
	if got := containerPort(t, c, "grpc"); got != grpcPort {
		t.Errorf("containerPort grpc = %d, -listen port = %d", got, grpcPort)
	}
	metrics, ok := args["metrics-listen"]
	if !ok {
		t.Fatal("-metrics-listen is not set: the pod annotations promise /metrics")
	}
	metricsPort := metricsListenPort(t, c, metrics)
	if got := containerPort(t, c, "metrics"); got != metricsPort {
		t.Errorf("containerPort metrics = %d, -metrics-listen port = %d", got, metricsPort)
	}
	if got := f.server.Spec.Template.Annotations["prometheus.io/port"]; got != strconv.Itoa(int(metricsPort)) {
		t.Errorf("annotation prometheus.io/port = %q, -metrics-listen port = %d", got, metricsPort)
	}

	// The readiness probe asks grpc.health.v1 on the gRPC port (the health
	// service is served by the same grpc.Server).
	rp := c.ReadinessProbe
	if rp == nil || rp.GRPC == nil {
		t.Fatal("the readiness probe must be a native grpc probe (grpc.health.v1)")
	}
	if rp.GRPC.Port != grpcPort {
		t.Errorf("readiness grpc.port = %d, -listen port = %d", rp.GRPC.Port, grpcPort)
	}
	if lp := c.LivenessProbe; lp != nil {
		port := probePort(t, c, lp)
		if port != grpcPort {
			t.Errorf("liveness probe port = %d, -listen port = %d", port, grpcPort)
		}
	}

	for _, svc := range []*corev1.Service{f.headless, f.clusterIP} {
		if len(svc.Spec.Ports) != 1 {
			t.Fatalf("Service %s: %d ports, want 1 (grpc)", svc.Name, len(svc.Spec.Ports))
		}
		p := svc.Spec.Ports[0]
		if got := resolvePort(t, c, p.TargetPort); got != grpcPort {
			t.Errorf("Service %s: targetPort %s is container port %d, -listen port = %d", svc.Name, p.TargetPort.String(), got, grpcPort)
		}
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			t.Errorf("Service %s: protocol %s, want TCP", svc.Name, p.Protocol)
		}
		if p.AppProtocol == nil || *p.AppProtocol != "kubernetes.io/h2c" {
			t.Errorf("Service %s: appProtocol should be kubernetes.io/h2c (gRPC over cleartext HTTP/2)", svc.Name)
		}
	}
}

// probePort resolves the port of a tcpSocket, httpGet or grpc probe.
func probePort(t testing.TB, c *corev1.Container, p *corev1.Probe) int32 {
	t.Helper()
	switch {
	case p.GRPC != nil:
		return p.GRPC.Port
	case p.TCPSocket != nil:
		return resolvePort(t, c, p.TCPSocket.Port)
	case p.HTTPGet != nil:
		return resolvePort(t, c, p.HTTPGet.Port)
	}
	t.Fatalf("container %s: probe without a port", c.Name)
	return 0
}

// resolvePort resolves a number or a named container port.
func resolvePort(t testing.TB, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.String {
		return containerPort(t, c, p.StrVal)
	}
	return p.IntVal
}

func TestClientDialsTheHeadlessService(t *testing.T) {
	checkClientDialsTheHeadlessService(t, loadFleet(t))
}

func checkClientDialsTheHeadlessService(t testing.TB, f *fleet) {
	args := commandLine(t, container(t, f.client, clientContainer), usage(t, "client"))
	target := args["target"]
	// The documented form: dns:/// with an empty authority (the pod's own
	// resolver), the headless Service's fully qualified name and its port.
	want := fmt.Sprintf("dns:///%s.%s.svc.cluster.local:%d", f.headless.Name, f.headless.Namespace, f.headless.Spec.Ports[0].Port)
	if target != want {
		t.Errorf("client -target=%s, want %s", target, want)
	}
	if f.clusterIP.Spec.Type != "" && f.clusterIP.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service %s: type %s, want ClusterIP", f.clusterIP.Name, f.clusterIP.Spec.Type)
	}
	if f.headless.Spec.PublishNotReadyAddresses {
		t.Errorf("Service %s publishes not-ready addresses: DNS clients would be sent to pods that are NOT_SERVING or terminating", f.headless.Name)
	}
}

func TestSelectorsAgree(t *testing.T) { checkSelectorsAgree(t, loadFleet(t)) }

func checkSelectorsAgree(t testing.TB, f *fleet) {
	serverPods := labels.Set(f.server.Spec.Template.Labels)
	clientPods := labels.Set(f.client.Spec.Template.Labels)
	selects := func(what string, sel *metav1.LabelSelector, pods labels.Set, want bool) {
		t.Helper()
		s, err := metav1.LabelSelectorAsSelector(sel)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if s.Empty() {
			t.Errorf("%s: empty selector selects every pod in the namespace", what)
		}
		if got := s.Matches(pods); got != want {
			t.Errorf("%s: selector %s matches pods %s = %v, want %v", what, s, pods, got, want)
		}
	}
	selects("server Deployment", f.server.Spec.Selector, serverPods, true)
	selects("server Deployment", f.server.Spec.Selector, clientPods, false)
	selects("client Deployment", f.client.Spec.Selector, clientPods, true)
	selects("client Deployment", f.client.Spec.Selector, serverPods, false)
	selects("PodDisruptionBudget", f.pdb.Spec.Selector, serverPods, true)
	selects("PodDisruptionBudget", f.pdb.Spec.Selector, clientPods, false)
	for _, tsc := range f.server.Spec.Template.Spec.TopologySpreadConstraints {
		selects("server topologySpreadConstraint", tsc.LabelSelector, serverPods, true)
	}
	for _, svc := range []*corev1.Service{f.headless, f.clusterIP} {
		sel := &metav1.LabelSelector{MatchLabels: svc.Spec.Selector}
		selects("Service "+svc.Name, sel, serverPods, true)
		selects("Service "+svc.Name, sel, clientPods, false)
	}
	ref := f.hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != f.server.Name {
		t.Errorf("HPA scaleTargetRef = %+v, want apps/v1 Deployment %s", ref, f.server.Name)
	}
}

func TestProbes(t *testing.T) { checkProbes(t, loadFleet(t)) }

func checkProbes(t testing.TB, f *fleet) {
	c := container(t, f.server, serverContainer)
	rp, lp := c.ReadinessProbe, c.LivenessProbe
	if rp == nil || rp.GRPC == nil {
		t.Fatal("the readiness probe must be a native grpc probe: it follows the library's health status")
	}
	readinessService := ""
	if rp.GRPC.Service != nil {
		readinessService = *rp.GRPC.Service
	}
	// The health lever flips the overall status ("") under load and when
	// draining; that is what readiness must follow.
	if readinessService != "" {
		t.Errorf("readiness probe asks for service %q; the library's status is the overall one (\"\")", readinessService)
	}
	if lp == nil {
		t.Fatal("no liveness probe: a wedged process would never be restarted")
	}
	// Liveness must not fail because the pod is busy. The overall health
	// status is flipped by load, so it must not be the liveness signal.
	switch {
	case lp.TCPSocket != nil:
	case lp.GRPC != nil && lp.GRPC.Service != nil && *lp.GRPC.Service != "":
	default:
		t.Errorf("liveness probe %+v: use tcpSocket (or a grpc probe on a named service that load never flips), never the overall health status", lp.ProbeHandler)
	}
	// Under overload a connect can queue behind a full accept backlog: give
	// liveness far more room than readiness.
	if lw, rw := probeWindow(lp), probeWindow(rp); lw < 30*time.Second || lw <= rw {
		t.Errorf("liveness window %v: want >= 30s and longer than readiness's %v", lw, rw)
	}
	if rp.SuccessThreshold > 1 {
		t.Errorf("readiness successThreshold %d delays a recovered pod's return; the health lever's hysteresis already prevents flapping", rp.SuccessThreshold)
	}
}

func TestTerminationTimings(t *testing.T) { checkTerminationTimings(t, loadFleet(t)) }

func checkTerminationTimings(t testing.TB, f *fleet) {
	pod := f.server.Spec.Template.Spec
	c := container(t, f.server, serverContainer)
	flags := usage(t, "server")
	args := commandLine(t, c, flags)

	if pod.TerminationGracePeriodSeconds == nil {
		t.Fatal("terminationGracePeriodSeconds is not set (the default 30 s is shorter than the drain)")
	}
	grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Fatal("preStop must be a native sleep: the distroless image has no shell for exec, and the server serves no HTTP hook")
	}
	preStop := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
	lameDuck := lameDuckDelay(t, flags, args)
	callGrace := duration(t, flags, args, "max-connection-age-grace")
	shutdown := duration(t, flags, args, "shutdown-timeout")
	readiness := probeWindow(c.ReadinessProbe)
	t.Logf("preStop %v, lame-duck delay %v, call grace %v, -shutdown-timeout %v, terminationGracePeriodSeconds %v, readiness window %v",
		preStop, lameDuck, callGrace, shutdown, grace, readiness)

	if readiness > lameDuck {
		t.Errorf("readiness window %v (periodSeconds x failureThreshold + timeoutSeconds) > lame-duck delay %v: the probe would still pass when the server starts sending GOAWAY", readiness, lameDuck)
	}
	if preStop+lameDuck < endpointPropagation {
		t.Errorf("preStop %v + lame-duck delay %v < %v: the listener closes before kube-proxy and DNS caches have dropped the pod", preStop, lameDuck, endpointPropagation)
	}
	if shutdown < lameDuck+callGrace {
		t.Errorf("-shutdown-timeout %v < lame-duck delay %v + call grace %v: Manager.Shutdown cuts calls that the grace promised to wait for", shutdown, lameDuck, callGrace)
	}
	if grace <= preStop+lameDuck+callGrace {
		t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + lame-duck delay %v + grace %v: SIGKILL lands inside the drain", grace, preStop, lameDuck, callGrace)
	}
	if grace <= preStop+shutdown {
		t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + -shutdown-timeout %v: SIGKILL lands before Manager.Shutdown gives up on its own", grace, preStop, shutdown)
	}
}

func TestReplicasAndDisruption(t *testing.T) { checkReplicasAndDisruption(t, loadFleet(t)) }

func checkReplicasAndDisruption(t testing.TB, f *fleet) {
	if f.server.Spec.Replicas == nil || *f.server.Spec.Replicas < 3 {
		t.Errorf("server replicas = %v, want >= 3", f.server.Spec.Replicas)
	}
	minR := int32(1)
	if f.hpa.Spec.MinReplicas != nil {
		minR = *f.hpa.Spec.MinReplicas
	}
	if minR < 3 {
		t.Errorf("HPA minReplicas = %d, want >= 3", minR)
	}
	if r := *f.server.Spec.Replicas; r < minR || r > f.hpa.Spec.MaxReplicas {
		t.Errorf("server replicas %d outside the HPA's [%d, %d]", r, minR, f.hpa.Spec.MaxReplicas)
	}
	if s := f.server.Spec.Strategy.RollingUpdate; s == nil || s.MaxUnavailable == nil || s.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rolling update should keep every replica until its successor is ready (maxUnavailable: 0)")
	}
	// The PDB must allow a drain to make progress and keep >= 2 serving.
	spec := f.pdb.Spec
	switch {
	case spec.MaxUnavailable != nil && spec.MinAvailable == nil:
		if mu := spec.MaxUnavailable; mu.Type != intstr.Int || mu.IntVal < 1 || minR-mu.IntVal < 2 {
			t.Errorf("PDB maxUnavailable %s: want an integer >= 1 that leaves >= 2 of %d pods", mu.String(), minR)
		}
	case spec.MinAvailable != nil && spec.MaxUnavailable == nil:
		if ma := spec.MinAvailable; ma.Type != intstr.Int || ma.IntVal < 2 || ma.IntVal >= minR {
			t.Errorf("PDB minAvailable %s: want an integer in [2, %d)", ma.String(), minR)
		}
	default:
		t.Error("PDB: set exactly one of maxUnavailable and minAvailable")
	}
}

func TestResourcesAndAutoscaling(t *testing.T) { checkResourcesAndAutoscaling(t, loadFleet(t)) }

func checkResourcesAndAutoscaling(t testing.TB, f *fleet) {
	for _, d := range []struct {
		name string
		pod  corev1.PodSpec
	}{{f.server.Name, f.server.Spec.Template.Spec}, {f.client.Name, f.client.Spec.Template.Spec}} {
		for _, c := range d.pod.Containers {
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				req, hasReq := c.Resources.Requests[r]
				lim, hasLim := c.Resources.Limits[r]
				if !hasReq || !hasLim {
					t.Errorf("%s/%s: %s request and limit must both be set", d.name, c.Name, r)
					continue
				}
				if req.Cmp(lim) > 0 {
					t.Errorf("%s/%s: %s request %s > limit %s", d.name, c.Name, r, req.String(), lim.String())
				}
			}
		}
	}
	c := container(t, f.server, serverContainer)
	req, lim := c.Resources.Requests[corev1.ResourceCPU], c.Resources.Limits[corev1.ResourceCPU]
	if req.Cmp(lim) != 0 {
		t.Errorf("server CPU request %s != limit %s: the HPA's utilization (of the request) and the library's (of the cgroup limit) would disagree", req.String(), lim.String())
	}

	var target int32
	for _, m := range f.hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil {
			target = *m.Resource.Target.AverageUtilization
		}
	}
	if target <= 0 || target >= 100 {
		t.Fatalf("HPA: want a CPU Utilization target in (0, 100), got %d", target)
	}
	// The HPA must add replicas before the overload levers act: every CPU
	// threshold the server defines (as a fraction 0..1 or a percentage)
	// must be above the HPA's target.
	flags := usage(t, "server")
	args := commandLine(t, c, flags)
	for name, fl := range flags {
		if !strings.Contains(name, "cpu") || (fl.Type != "float" && fl.Type != "int") {
			continue
		}
		v, set := args[name]
		if !set {
			v = fl.Default
		}
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x <= 0 {
			continue // off
		}
		if x <= 1 {
			x *= 100
		}
		if x <= float64(target) {
			t.Errorf("-%s=%s is at or below the HPA's CPU target %d%%: pods would shed or flip before the HPA scales out", name, v, target)
		}
	}
}

func TestPodSecurity(t *testing.T) { checkPodSecurity(t, loadFleet(t)) }

func checkPodSecurity(t testing.TB, f *fleet) {
	uid := dockerfileUser(t)
	for _, d := range []struct {
		name string
		pod  corev1.PodSpec
	}{{f.server.Name, f.server.Spec.Template.Spec}, {f.client.Name, f.client.Spec.Template.Spec}} {
		sc := d.pod.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s: runAsNonRoot must be true", d.name)
		}
		if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != uid {
			t.Errorf("%s: runAsUser must be %d, the Dockerfile's USER", d.name, uid)
		}
		if d.pod.AutomountServiceAccountToken == nil || *d.pod.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken should be false (no Kubernetes API access is needed)", d.name)
		}
		for _, c := range d.pod.Containers {
			csc := c.SecurityContext
			if csc == nil || csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
				csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
				csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
				t.Errorf("%s/%s: want allowPrivilegeEscalation false, readOnlyRootFilesystem true, capabilities drop ALL", d.name, c.Name)
			}
		}
	}
}

func TestNamesTheAPIServerAccepts(t *testing.T) { checkNamesTheAPIServerAccepts(t, loadFleet(t)) }

// checkNamesTheAPIServerAccepts applies the API server's own name rules
// (k8s.io/apimachinery/pkg/util/validation), which strict decoding does not:
// a Service name is a DNS-1035 label (it becomes a DNS name), other names
// DNS-1123 subdomains, port names IANA service names, labels qualified
// names and label values.
func checkNamesTheAPIServerAccepts(t testing.TB, f *fleet) {
	report := func(what, value string, errs []string) {
		t.Helper()
		if len(errs) > 0 {
			t.Errorf("%s %q: %s", what, value, strings.Join(errs, "; "))
		}
	}
	checkLabels := func(what string, m map[string]string) {
		t.Helper()
		for k, v := range m {
			report(what+" label key", k, validation.IsQualifiedName(k))
			report(what+" label value", v, validation.IsValidLabelValue(v))
		}
	}
	for _, o := range f.objs {
		if o.Kind == "Service" || o.Kind == "Namespace" {
			report(o.Kind+" name", o.Name(), validation.IsDNS1035Label(o.Name()))
		} else {
			report(o.Kind+" name", o.Name(), validation.IsDNS1123Subdomain(o.Name()))
		}
		if m, ok := o.Value.(metav1.Object); ok {
			checkLabels(o.String(), m.GetLabels())
		}
	}
	for _, svc := range []*corev1.Service{f.headless, f.clusterIP} {
		checkLabels("Service "+svc.Name+" selector", svc.Spec.Selector)
		for _, p := range svc.Spec.Ports {
			report("Service "+svc.Name+" port name", p.Name, validation.IsValidPortName(p.Name))
		}
	}
	for _, d := range []*appsv1.Deployment{f.server, f.client} {
		checkLabels("Deployment "+d.Name+" pod", d.Spec.Template.Labels)
		for _, c := range d.Spec.Template.Spec.Containers {
			report("container name", c.Name, validation.IsDNS1123Label(c.Name))
			for _, p := range c.Ports {
				report("container "+c.Name+" port name", p.Name, validation.IsValidPortName(p.Name))
			}
			for _, e := range c.Env {
				report("container "+c.Name+" env name", e.Name, validation.IsEnvVarName(e.Name))
			}
			for what, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
				if p == nil {
					continue
				}
				if p.PeriodSeconds < 0 || p.TimeoutSeconds < 0 || p.FailureThreshold < 0 || p.SuccessThreshold < 0 {
					t.Errorf("container %s: %s probe with a negative field", c.Name, what)
				}
				if what != "readiness" && p.SuccessThreshold > 1 {
					t.Errorf("container %s: %s probe successThreshold must be 1", c.Name, what)
				}
			}
		}
	}
	if minR := f.hpa.Spec.MinReplicas; minR != nil && *minR > f.hpa.Spec.MaxReplicas {
		t.Errorf("HPA minReplicas %d > maxReplicas %d", *minR, f.hpa.Spec.MaxReplicas)
	}
}
