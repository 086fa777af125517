package clientconfig

// RoundRobin is the default client service config: round_robin, client-side
// health checking, and retries with throttling for the calls the server
// sheds (see the package documentation for each value). docs/clients.md
// shows it in full.
const RoundRobin = `{
  "loadBalancingConfig": [{"round_robin": {}}],
` + healthAndRetries + `
}`

// WeightedRoundRobin is RoundRobin with weighted_round_robin fed by the ORCA
// reports the server attaches to call trailers (on each connection, the
// first unary call of every orca.Config.PerCallInterval, and every stream),
// falling back to round_robin for clients without it. grpc-go needs the
// blank import of google.golang.org/grpc/balancer/weightedroundrobin.
const WeightedRoundRobin = `{
  "loadBalancingConfig": [
    {"weighted_round_robin": {
      "enableOobLoadReport": false,      "enable_oob_load_report": false,
` + wrrWeights + `
    }},
    {"round_robin": {}}
  ],
` + healthAndRetries + `
}`

// WeightedRoundRobinOOB is WeightedRoundRobin with out-of-band ORCA reports:
// each connection opens one OpenRcaService stream and receives a report
// every 30 s (the server's default orca.Config.MinReportingInterval).
// Prefer it for @grpc/grpc-js clients and for clients that send few calls.
const WeightedRoundRobinOOB = `{
  "loadBalancingConfig": [
    {"weighted_round_robin": {
      "enableOobLoadReport": true,       "enable_oob_load_report": true,
      "oobReportingPeriod": "30s",       "oob_load_reporting_period": "30s",
` + wrrWeights + `
    }},
    {"round_robin": {}}
  ],
` + healthAndRetries + `
}`

// wrrWeights are gRFC A58's defaults for how weights are used, in both
// spellings (camelCase: grpc-go, grpc-java; snake_case: @grpc/grpc-js).
const wrrWeights = `      "blackoutPeriod": "10s",           "blackout_period": "10s",
      "weightUpdatePeriod": "1s",        "weight_update_period": "1s",
      "weightExpirationPeriod": "180s",  "weight_expiration_period": "180s",
      "errorUtilizationPenalty": 1,      "error_utilization_penalty": 1`

// healthAndRetries is what every config carries besides its policy.
// tokenRatio is written 2.0, not 2: C-core 1.51 (python grpcio) misreads a
// tokenRatio without a decimal point, and its retries then stop after the
// first few dozen failures (measured: half the calls failed with one of two
// replicas shedding, against 0.5 % with 2.0).
const healthAndRetries = `  "healthCheckConfig": {"serviceName": ""},
  "methodConfig": [{
    "name": [{}],
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.01s",
      "maxBackoff": "0.1s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }],
  "retryThrottling": {"maxTokens": 100, "tokenRatio": 2.0}`
