package grpcmgmt

import (
	"errors"
	"fmt"
	"slices"
)

// ErrShutdown is returned by Register after Shutdown has begun.
var ErrShutdown = errors.New("grpcmgmt: manager is shut down")

// errNoCredentials is New's error when neither WithCredentials nor
// WithInsecure was given.
var errNoCredentials = errors.New("grpcmgmt: New: no transport credentials: pass WithCredentials(creds) " +
	"for TLS or mTLS, or WithInsecure() for plaintext; do not pass grpc.Creds to grpc.NewServer as well " +
	"(grpc.Creds keeps only the last value set: placed before the Manager's options it is replaced and " +
	"TLS is lost, placed after them per-connection GOAWAY stops working)")

func errNil(option string) error {
	return fmt.Errorf("grpcmgmt: %s: argument must not be nil", option)
}

func errUnknownFeature(f Feature) error {
	if f == "load" {
		return errors.New(`grpcmgmt: Without("load"): the load sampler is shared by every lever and is always on ` +
			`(configure it with WithLoad); turn the levers that use it off instead`)
	}
	known := make([]string, 0, len(features))
	for _, k := range features {
		known = append(known, string(k))
	}
	slices.Sort(known)
	return fmt.Errorf("grpcmgmt: Without(%q): unknown feature; known features are %v", string(f), known)
}
