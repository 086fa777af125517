// Package maxage bounds how long a client may keep one connection, so that
// clients behind per-connection balancers reconnect and re-resolve.
//
// gRPC multiplexes all of a client's calls over one long-lived HTTP/2
// connection. A DNS round-robin client, a Kubernetes ClusterIP Service or an
// L4 load balancer picks a backend once, when the connection is made; without
// an end to the connection the choice is never made again and a replica added
// by a scale-out receives nothing. gRFC A9
// (https://github.com/grpc/proposal/blob/master/A9-server-side-conn-mgt.md)
// defines the server-side fix this package configures: MAX_CONNECTION_AGE
// sends a graceful GOAWAY (the client opens a new connection and moves new
// calls there), MAX_CONNECTION_AGE_GRACE then closes the old connection hard
// so a client that ignores GOAWAY cannot pin it, and MAX_CONNECTION_IDLE
// closes connections that carry nothing.
//
// grpc-go implements the timers; this package chooses defaults, validates
// them, and turns a Config into keepalive.ServerParameters and a
// keepalive.EnforcementPolicy. grpc-go adds a random ±10 % jitter to
// MaxConnectionAge so that connections opened together do not all end
// together.
//
// # Defaults, and why
//
//   - MaxConnectionAge 2m. A scale-out becomes visible to every existing
//     client within about 2m (plus the client's DNS re-resolution floor, 30 s
//     in grpc-go) instead of never. A reconnect costs one TCP (and TLS)
//     handshake, and with HTTP/2 the new connection is opened before the old
//     one closes, so no call waits: 1,000 clients cost about 8 handshakes a
//     second per replica. Lower it if scale-outs must be felt sooner; the
//     goaway package rebalances on scale-out within seconds and makes a long
//     age acceptable.
//   - MaxConnectionAgeGrace 30s. Calls in flight when the GOAWAY is sent have
//     this long to finish before the connection is closed. 30 s covers unary
//     calls with any sensible deadline and matches Kubernetes' default
//     terminationGracePeriodSeconds. Long-lived streams are cut at the end of
//     the grace and must be resumed by the client; raise the grace (or use
//     Off) for services built on such streams.
//   - MaxConnectionIdle 10m. Frees the connections of clients that went
//     quiet; idle connections cost little, and closing them sooner would add
//     a handshake to the first call of clients with sporadic traffic.
//   - Server keepalive Time 1m, Timeout 20s. The server pings a quiet client
//     every minute and closes the connection if no answer arrives in 20 s, so
//     connections of crashed clients and half-open TCP connections are found
//     in about 80 s instead of grpc-go's 2 h.
//   - Enforcement MinTime 5s with PermitWithoutStream. grpc-go's server
//     default (5 min, no pings without streams) closes clients that follow
//     common advice (keepalive every 10-30 s, also when idle) with GOAWAY
//     ENHANCE_YOUR_CALM "too_many_pings". grpc-go clients cannot ping more
//     often than every 10 s, so 5 s accepts every standard client while still
//     stopping a client that floods pings.
//
// A zero field means its default; Off disables a timer. Config.Validate (and
// so grpcmgmt.New) rejects negative and out-of-range values with an error
// naming the field.
package maxage
