package deploy

import (
	"path/filepath"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
)

// Paths, relative to this package's directory (where go test runs).
var (
	repoRoot      = ".."
	manifestDir   = "kubernetes"
	dockerfile    = "Dockerfile"
	dockerignore  = "Dockerfile.dockerignore"
	kubernetesDoc = filepath.Join("..", "docs", "kubernetes.md")
)

// Names the manifests use for the two workloads.
const (
	serverDeployment = "grpcmgmt-server"
	clientDeployment = "grpcmgmt-client"
	serverContainer  = "server"
	clientContainer  = "client"
)

// fleet is the decoded manifest set, each object in its role.
type fleet struct {
	objs      []Object
	namespace *corev1.Namespace
	server    *appsv1.Deployment
	client    *appsv1.Deployment
	headless  *corev1.Service // clusterIP: None
	clusterIP *corev1.Service // the L4 Service
	pdb       *policyv1.PodDisruptionBudget
	hpa       *autoscalingv2.HorizontalPodAutoscaler
}

// loadFleet decodes deploy/kubernetes and finds every object the checks
// need, failing when one is missing or appears twice.
func loadFleet(t testing.TB) *fleet {
	t.Helper()
	objs, err := LoadDir(manifestDir)
	if err != nil {
		t.Fatal(err)
	}
	f := &fleet{objs: objs}
	set := func(dst any, o Object) {
		switch p := dst.(type) {
		case **corev1.Namespace:
			if *p != nil {
				t.Fatalf("second Namespace: %v", o)
			}
			*p = o.Value.(*corev1.Namespace)
		case **appsv1.Deployment:
			if *p != nil {
				t.Fatalf("second Deployment named %s: %v", o.Name(), o)
			}
			*p = o.Value.(*appsv1.Deployment)
		case **corev1.Service:
			if *p != nil {
				t.Fatalf("a third Service, or two of one kind: %v", o)
			}
			*p = o.Value.(*corev1.Service)
		case **policyv1.PodDisruptionBudget:
			if *p != nil {
				t.Fatalf("second PodDisruptionBudget: %v", o)
			}
			*p = o.Value.(*policyv1.PodDisruptionBudget)
		case **autoscalingv2.HorizontalPodAutoscaler:
			if *p != nil {
				t.Fatalf("second HorizontalPodAutoscaler: %v", o)
			}
			*p = o.Value.(*autoscalingv2.HorizontalPodAutoscaler)
		}
	}
	for _, o := range objs {
		switch v := o.Value.(type) {
		case *corev1.Namespace:
			set(&f.namespace, o)
		case *appsv1.Deployment:
			switch v.Name {
			case serverDeployment:
				set(&f.server, o)
			case clientDeployment:
				set(&f.client, o)
			default:
				t.Fatalf("unexpected Deployment %v", o)
			}
		case *corev1.Service:
			if v.Spec.ClusterIP == corev1.ClusterIPNone {
				set(&f.headless, o)
			} else {
				set(&f.clusterIP, o)
			}
		case *policyv1.PodDisruptionBudget:
			set(&f.pdb, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			set(&f.hpa, o)
		}
	}
	for what, missing := range map[string]bool{
		"Namespace": f.namespace == nil, "server Deployment": f.server == nil,
		"client Deployment": f.client == nil, "headless Service": f.headless == nil,
		"ClusterIP Service": f.clusterIP == nil, "PodDisruptionBudget": f.pdb == nil,
		"HorizontalPodAutoscaler": f.hpa == nil,
	} {
		if missing {
			t.Fatalf("no %s in %s", what, manifestDir)
		}
	}
	return f
}

// container returns the named container of d's pod template.
func container(t testing.TB, d *appsv1.Deployment, name string) *corev1.Container {
	t.Helper()
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == name {
			return c
		}
	}
	t.Fatalf("Deployment %s has no container %q", d.Name, name)
	return nil
}

// containerPort returns the port number of c's port named name.
func containerPort(t testing.TB, c *corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container %s has no port named %q", c.Name, name)
	return 0
}
