// Package cluster runs a one-machine cluster for the benchmark scenarios
// (bench/cmd/scenarios): replicas of examples/server as processes on 127.0.0.2,
// 127.0.0.3, …, a real dnsmasq serving the replica set, a real HAProxy in
// TCP mode in front of them, and load generators (grpc-go closed- and
// open-loop, and a Node @grpc/grpc-js client).
//
// Everything is bounded in time and stopped on every exit path: each part
// registers its cleanup with the Cluster, and Cluster.Close kills whatever
// is still running.
package cluster
