//go:build race

package grpcmgmt_test

// raceEnabled: the race detector instruments allocations, so allocation
// counts under it are not the program's own.
const raceEnabled = true
