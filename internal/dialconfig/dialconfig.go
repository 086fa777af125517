// Package dialconfig holds the documented client service configs (see
// docs/clients.md), so the examples, the demo and the tests dial exactly
// what the documentation tells users to.
package dialconfig

// RoundRobin is the default config for Go clients: round_robin over every
// resolved address, client-side health checking (needs the blank import
// _ "google.golang.org/grpc/health"), and a retry policy for UNAVAILABLE,
// the status grpcmgmt sheds with (the server's grpc-retry-pushback-ms
// trailer, when present, replaces the backoff).
const RoundRobin = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "healthCheckConfig": {"serviceName": ""},
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {
      "maxAttempts": 3,
      "initialBackoff": "0.05s",
      "maxBackoff": "1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`
