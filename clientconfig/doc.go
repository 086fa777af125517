// Package clientconfig is the one source of the client configuration that
// goes with a grpcmgmt server: the gRPC service configs (JSON, as read by
// grpc-go, grpc-java, C-core and @grpc/grpc-js) that make a standard client
// act on the server's signals. The documentation (docs/clients.md), the
// examples and the tests take them from here, and a test compares every
// service config shown in docs/ and README.md with these.
//
// # Which one
//
//   - RoundRobin: the default. round_robin over every resolved address,
//     client-side health checking, and retries for calls the server sheds.
//   - WeightedRoundRobin: the same with weighted_round_robin fed by the ORCA
//     reports in call trailers (gRFC A58), so each replica gets traffic in
//     proportion to its measured capacity.
//   - WeightedRoundRobinOOB: the same with out-of-band ORCA reports, one
//     stream per connection: for clients that send few calls, and for
//     @grpc/grpc-js, which parses every per-call report at a noticeable CPU
//     cost.
//
// In Go:
//
//	import (
//		_ "google.golang.org/grpc/health"                      // healthCheckConfig
//		_ "google.golang.org/grpc/balancer/weightedroundrobin" // only for the weighted configs
//	)
//
//	cc, err := grpc.NewClient("dns:///my-svc.my-ns.svc.cluster.local:50051",
//		grpc.WithTransportCredentials(creds),
//		grpc.WithDefaultServiceConfig(clientconfig.RoundRobin))
//
// Other languages pass the same JSON: grpc-java's defaultServiceConfig
// (with enableRetry), C-core's GRPC_ARG_SERVICE_CONFIG ("grpc.service_config"
// in Python), grpc-js's "grpc.service_config" channel option; or publish it
// in DNS TXT records. docs/clients.md says per language which signals each
// client honours.
//
// # What each part does, and why these values
//
// loadBalancingConfig: round_robin keeps a connection to every resolved
// address and rotates calls over the ready ones (pick_first, the default,
// would send everything to one replica). The weighted configs list
// weighted_round_robin first and round_robin after it: a client takes the
// first policy it supports, so one without weighted_round_robin (C-core
// 1.51, or a Go client missing the blank import) splits evenly instead of
// failing. Every weighted_round_robin field is spelled twice, camelCase for
// grpc-go and grpc-java and snake_case for @grpc/grpc-js 1.14, which
// silently ignores the other spelling. The values are gRFC A58's defaults
// (blackout 10 s, weights updated every 1 s, expired after 3 min, error
// penalty 1).
//
// healthCheckConfig {"serviceName": ""}: the client watches the whole
// server's grpc.health.v1 status on every connection and skips replicas
// that report NOT_SERVING, the status the health lever sets while a replica
// is overloaded (bounded in time) or shutting down (gRFC A17). grpc-go needs
// the blank import of google.golang.org/grpc/health; grpc-js ignores it.
//
// retryPolicy: the server sheds with UNAVAILABLE (loadshed's default Code;
// add "RESOURCE_EXHAUSTED" if you configure that one) before sending any
// header, with a grpc-retry-pushback-ms trailer: the client retries after
// exactly the pushback (gRFC A6), through its picker, so usually on another
// replica. The backoff (10 ms, doubling to 100 ms) applies only when there
// is no pushback, such as a call refused by a replica that is going away:
// another replica is ready, so there is nothing to wait for. maxAttempts 5
// is grpc-go's cap: with round_robin the picker advances once per attempt
// over all of a channel's calls, so with concurrent calls a retry can land
// on the shedding replica again (about 1 in N of N replicas). Measured with
// two replicas, one of them shedding every call, 4 callers on one channel:
// 0.4 % of grpc-java's and 0.5 % of C-core's calls spent all 5 attempts
// there (bench/cluster's TestStacksHonourTheDocumentedConfig; 7-8 % with 3
// attempts), and with one at its concurrency limit about 2 % of grpc-go's
// (loadshed's package documentation).
//
// retryThrottling (gRFC A6) bounds what retries add to a fleet that is
// short of capacity: each failed attempt costs a token, each success
// returns tokenRatio (2) up to maxTokens (100), and retries stop while
// fewer than half the tokens are left. Retries therefore stop once more
// than two attempts in three fail (every replica shedding), after a burst
// of about 50 net failures, and resume as calls succeed again. Write
// tokenRatio with a decimal point (2.0) when you copy the JSON: C-core 1.51
// misreads the integer 2 and then stops retrying after a few dozen failures
// even when most attempts succeed (bench/cluster's
// TestStacksHonourTheDocumentedConfig measured half the calls failing).
//
// For the out-of-band config, oobReportingPeriod is 30 s, the server's
// default orca.Config.MinReportingInterval (grpc-go's own minimum): a
// client asking for reports more often gets them at the server's pace
// anyway. To refresh weights faster, lower both together.
package clientconfig
