package grpcmgmt

import (
	"errors"
	"fmt"
	"slices"
)

// ErrShutdown is returned by Register after Shutdown has begun.
var ErrShutdown = errors.New("grpcmgmt: manager is shut down")

func errNil(option string) error {
	return fmt.Errorf("grpcmgmt: %s: argument must not be nil", option)
}

func errUnknownFeature(name string) error {
	known := make([]string, 0, len(defaultFeatures))
	for _, f := range defaultFeatures {
		known = append(known, f.Name)
	}
	slices.Sort(known)
	return fmt.Errorf("grpcmgmt: Without(%q): unknown feature; known features are %v", name, known)
}
