// Package deploy holds the Kubernetes manifests and the container image
// definition for grpcmgmt's example server and client (deploy/kubernetes/,
// deploy/Dockerfile), and the offline checks that keep them deployable.
//
// It is a Go module of its own (github.com/grpcmgmt/grpcmgmt/deploy) so that
// the library's go.mod never gains a Kubernetes dependency; the tests build
// the example binaries from the parent module and check the manifests
// against what those binaries really accept.
//
// Nothing here needs a cluster or a Docker engine. The checks, and where
// each is made:
//
//   - Strict decoding (LoadDir, in manifest.go): every YAML document is
//     decoded into its k8s.io/api type the way the API server's strict field
//     validation does: unknown fields, duplicate keys, case mismatches and
//     unregistered kinds are errors, so a typo cannot be silently dropped.
//   - Flags (ParseUsage, in usage.go): the flags a manifest passes are parsed
//     against the -h output of the built binary, so a manifest cannot pass a
//     flag the server does not define, and the timing checks read the
//     server's real defaults for flags a manifest leaves unset.
//   - Cross-file invariants (manifests_test.go): ports, probes, selectors,
//     the termination budget against Manager.Shutdown's lame duck, resources
//     against the HPA, the Dockerfile's user against the pods', and the API
//     server's own rules for names, labels and probe fields.
//   - A kubelet stand-in (live_test.go): the server binary is started with
//     the manifest's own arguments and probed the way the kubelet probes it,
//     the client binary calls it with its manifest's arguments, and the
//     server is stopped with SIGTERM and timed against the termination
//     budget (NOT_SERVING, the lame-duck delay, GOAWAY, exit).
//   - Broken copies (mutation_test.go): each invariant is shown to fail on a
//     manifest or Dockerfile broken the way edits break them.
//
// docs/kubernetes.md explains what each setting does in a cluster.
package deploy
