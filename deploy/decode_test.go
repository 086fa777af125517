package deploy

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

const validService = `apiVersion: v1
kind: Service
metadata:
  name: s
spec:
  clusterIP: None
  selector: {app: x}
  ports:
    - name: grpc
      port: 50051
      targetPort: grpc
`

func TestDecodeAcceptsValidDocuments(t *testing.T) {
	objs, err := Decode("t.yaml", []byte("# leading comment\n---\n"+validService+"---\n# only a comment\n---\n"+strings.Replace(validService, "name: s", "name: s2", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 {
		t.Fatalf("%d objects, want 2", len(objs))
	}
	svc, ok := objs[1].Value.(*corev1.Service)
	if !ok {
		t.Fatalf("%T, want *corev1.Service", objs[1].Value)
	}
	if svc.Name != "s2" || svc.Spec.Ports[0].TargetPort.StrVal != "grpc" || objs[1].Index != 3 {
		t.Errorf("decoded %+v (document %d)", svc, objs[1].Index)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"misspelled field", strings.Replace(validService, "clusterIP:", "clusterIp:", 1), `unknown field "spec.clusterIp"`},
		{"field in the wrong place", strings.Replace(validService, "  selector:", "  targetPort: 1\n  selector:", 1), `unknown field "spec.targetPort"`},
		{"field of another kind", strings.Replace(validService, "  selector:", "  replicas: 3\n  selector:", 1), `unknown field "spec.replicas"`},
		{"case mismatch", strings.Replace(validService, "  selector:", "  Selector:", 1), `unknown field "spec.Selector"`},
		{"duplicate key", validService + "  clusterIP: None\n", `key "clusterIP" already set`},
		{"wrong type", strings.Replace(validService, "port: 50051", "port: fifty", 1), "cannot unmarshal"},
		{"unregistered kind", strings.Replace(validService, "kind: Service", "kind: Ingress", 1), "not registered"},
		{"no kind", strings.Replace(validService, "kind: Service\n", "", 1), "apiVersion and kind are required"},
		{"not YAML", "a: [b\n", "yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode("t.yaml", []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
