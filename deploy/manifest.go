package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Object is one decoded manifest document.
type Object struct {
	// File is the path of the file the document came from.
	File string
	// Index is the document's position in File (0 for the first).
	Index int
	// APIVersion and Kind name the type Value was decoded into.
	APIVersion, Kind string
	// Value is a pointer to the typed object (*appsv1.Deployment, ...).
	Value any
}

// Name returns the object's metadata.name.
func (o Object) Name() string { return o.meta().GetName() }

// Namespace returns the object's metadata.namespace.
func (o Object) Namespace() string { return o.meta().GetNamespace() }

func (o Object) meta() metav1.Object {
	m, ok := o.Value.(metav1.Object)
	if !ok {
		return &metav1.ObjectMeta{}
	}
	return m
}

func (o Object) String() string {
	return fmt.Sprintf("%s %s/%s (%s, document %d)", o.Kind, o.Namespace(), o.Name(), o.File, o.Index)
}

// kinds maps "apiVersion kind" to a constructor of the typed object. A kind
// that is not listed is an error: adding a manifest of a new kind means
// adding its type here (and its checks to the tests).
var kinds = map[string]func() any{
	"v1 Namespace":                           func() any { return new(corev1.Namespace) },
	"v1 Service":                             func() any { return new(corev1.Service) },
	"apps/v1 Deployment":                     func() any { return new(appsv1.Deployment) },
	"policy/v1 PodDisruptionBudget":          func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2 HorizontalPodAutoscaler": func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
}

// LoadDir decodes every document of every *.yaml and *.yml file in dir, in
// file name order (the order kubectl apply -f dir uses).
func LoadDir(dir string) ([]Object, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	var objs []Object
	for _, n := range names {
		path := filepath.Join(dir, n)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		got, err := Decode(path, data)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	return objs, nil
}

// Decode strictly decodes the YAML documents in data (separated by "---")
// into their k8s.io/api types, as the API server does with
// fieldValidation=Strict (kubectl apply --validate=strict): duplicate keys,
// fields the type does not have, keys whose case differs from the field's
// JSON name, values of the wrong type, and kinds not registered in this
// package are errors. Empty documents (only comments) are skipped. file is
// used in error messages.
func Decode(file string, data []byte) ([]Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		obj, err := decodeDoc(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if obj == nil {
			continue
		}
		obj.File, obj.Index = file, i
		objs = append(objs, *obj)
	}
}

func decodeDoc(doc []byte) (*Object, error) {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return nil, err
	}
	if t := bytes.TrimSpace(js); len(t) == 0 || string(t) == "null" {
		return nil, nil
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return nil, fmt.Errorf("reading apiVersion and kind: %w", err)
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		return nil, errors.New("apiVersion and kind are required")
	}
	newObj, ok := kinds[tm.APIVersion+" "+tm.Kind]
	if !ok {
		return nil, fmt.Errorf("%s %s: kind not registered in deploy/manifest.go (known: %s)",
			tm.APIVersion, tm.Kind, strings.Join(slices.Sorted(maps.Keys(kinds)), ", "))
	}
	v := newObj()
	strict, err := kjson.UnmarshalStrict(js, v)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	if len(strict) > 0 {
		return nil, fmt.Errorf("%s %s: strict decoding: %w", tm.APIVersion, tm.Kind, errors.Join(strict...))
	}
	return &Object{APIVersion: tm.APIVersion, Kind: tm.Kind, Value: v}, nil
}
