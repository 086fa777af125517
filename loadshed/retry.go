package loadshed

// ClientServiceConfig is the service config a client needs so that a call
// this package sheds succeeds on another backend (see the package
// documentation). Pass it with grpc.WithDefaultServiceConfig (grpc-go), the
// "grpc.service_config" channel option (grpc-js), or publish it in DNS TXT.
//
// round_robin spreads calls over every backend, and each retry attempt goes
// through the picker again. The retry policy retries UNAVAILABLE (the
// default shed code; add "RESOURCE_EXHAUSTED" if Config.Code is that) up
// to 4 more times (5 attempts is grpc-go's cap); with the shed's
// grpc-retry-pushback-ms trailer the client waits exactly the pushback,
// otherwise the backoff. retryThrottling (gRFC A6) stops retries on the
// channel once more than two attempts in three fail (every backend
// overloaded), after a burst of about 50 net failures, so retries do not
// multiply a fleet-wide overload; a lower tokenRatio would already stop
// them when one of two backends sheds everything.
const ClientServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
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
  "retryThrottling": {"maxTokens": 100, "tokenRatio": 2}
}`
