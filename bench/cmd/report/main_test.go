package main

import "testing"

// TestRunName: runs are named A to Z, then AA, AB, … (a page of more than
// 26 runs named the 27th "[").
func TestRunName(t *testing.T) {
	for i, want := range map[int]string{0: "A", 25: "Z", 26: "AA", 27: "AB", 51: "AZ", 52: "BA", 701: "ZZ", 702: "AAA"} {
		if got := runName(i); got != want {
			t.Errorf("runName(%d) = %q, want %q", i, got, want)
		}
	}
}
