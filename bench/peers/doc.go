// Package peers holds benchmarks of the load-shedding libraries the
// loadshed package is compared with (BENCH.md's peer.* figures). They live
// in the bench module, not next to loadshed's own BenchmarkAdmit, so that
// the library's go.mod does not require them.
package peers
