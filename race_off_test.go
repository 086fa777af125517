//go:build !race

package grpcmgmt_test

const raceEnabled = false
