// Package grpcmgmt makes gRPC load balancing work from the server side, for
// standard, unmodified clients in any language.
//
// gRPC sends all calls of a client over one long-lived HTTP/2 connection, so
// anything that balances per connection (DNS round-robin, a Kubernetes
// ClusterIP Service, an L4 balancer) balances only once. grpcmgmt gives the
// server the levers to make clients move, in ways every standard client
// already understands:
//
//   - maxage: ends connections after MAX_CONNECTION_AGE (with jitter and
//     grace), so clients reconnect and re-resolve;
//   - goaway: sends GOAWAY on chosen connections when CPU or in-flight load
//     crosses a threshold, so clients move; and, with WithRebalance (off by
//     default: it needs the replica set's DNS name), when the replica set
//     grows;
//   - health: flips grpc.health.v1 status while overloaded (bounded in time)
//     or draining, so health-checking clients and Kubernetes probes stop
//     sending;
//   - orca: publishes ORCA load reports from real measurements, so
//     weighted_round_robin clients follow capacity;
//   - loadshed: sheds calls it cannot serve in time, early and cheaply, with
//     a retryable status and a retry pushback (off by default: pair it with
//     a client retry policy);
//   - load: one shared sampler of CPU, memory, in-flight calls and rates that
//     every other lever decides on.
//
// # Use
//
// The one-line form, for a process that serves its grpc.Server for its
// whole life (one process-wide Manager, reached with Default; an invalid
// option panics at start-up):
//
//	srv := grpc.NewServer(grpcmgmt.ServerOptions(grpcmgmt.WithCredentials(tlsCreds))...)
//	grpcmgmt.Default().Register(srv)       // serves health and ORCA
//
// The Manager form, which also reports invalid options as errors, and
// shuts down in lame-duck fashion:
//
//	m, err := grpcmgmt.New(grpcmgmt.WithCredentials(tlsCreds), // or WithInsecure(): one is required
//		grpcmgmt.WithMaxAge(maxage.Config{MaxConnectionAge: time.Minute}))
//	if err != nil { ... }                  // names the invalid option
//	srv := grpc.NewServer(m.ServerOptions()...)
//	pb.RegisterGreeterServer(m.Registrar(srv), impl) // or (srv, impl): see below
//	m.Register(srv)
//	go srv.Serve(lis)
//	...
//	m.Shutdown(ctx)                        // drains, stops srv, stops the sampler
//
// Registering your services through Manager.Registrar is optional and
// cheaper: their unary methods do the interceptor's work in their own
// handlers, so grpc-go's generated code skips the two allocations it makes
// for any interceptor on every unary call (about 0.5 % of a small call's
// CPU; bench/NOTES.md, eighteenth session).
// Services registered on the server directly are served by ServerOptions'
// interceptor, with the same levers.
//
// # Where decisions are made
//
// Each lever lives in its own package, and its package documentation says
// where its decisions are made. The Manager (manager.go) only wires them,
// explicitly, with one typed field per lever: New builds them in a fixed
// order (Manager.buildLevers; each lever's option and build function are in
// feature_*.go), ServerOptions installs them in the order a call passes
// them (one interceptor for every lever: shedding, then the call counter,
// then ORCA's report; see Manager.ServerOptions; Manager.Registrar's
// handlers do the same in registrar.go), Register registers their
// services and Shutdown drains and closes them.
//
// # Turning levers off
//
// maxage, goaway, health and orca are on by default; loadshed and
// rebalance are on once WithLoadShed or WithRebalance is given. Without
// turns any of them off by name (the Feature constants: "maxage",
// "goaway", "health", "orca", "loadshed", "rebalance"), whatever its
// position among the options. Inside a lever, a threshold or timer is
// turned off by its package's own setting, documented on the field
// (maxage.Off, loadshed.Off, goaway.PolicyConfig.Off, orca's and health's
// Disable* fields).
//
// # Options grpc-go allows once
//
// grpc.Creds, grpc.KeepaliveParams, grpc.KeepaliveEnforcementPolicy and
// grpc.InTapHandle keep only one value (InTapHandle panics when set twice).
// The options returned by ServerOptions set each of them once. Pass your own
// transport credentials with WithCredentials instead of grpc.Creds, so the
// library can wrap them (New requires WithCredentials or WithInsecure, so
// plaintext is never a silent default); a grpc.Creds placed after
// grpcmgmt's options replaces grpcmgmt's, which the goaway lever detects
// and reports (goaway.Tracker.Audit). Pass your own tap handle with
// WithTapHandle. A grpc.KeepaliveParams placed after grpcmgmt's options
// replaces grpcmgmt's. The library's interceptor pair is added with
// grpc.ChainUnaryInterceptor and grpc.ChainStreamInterceptor and combines
// with yours in either order (alone, grpc-go calls it without a chain:
// each further interceptor costs grpc-go's chaining a closure per call).
package grpcmgmt
