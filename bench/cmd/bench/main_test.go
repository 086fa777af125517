package main

import "testing"

func TestParse(t *testing.T) {
	out := `goos: linux
BenchmarkAdmit/loadshed/all-2         	37104188	        32.10 ns/op	       0 B/op	       0 allocs/op
BenchmarkAdmit/loadshed/all-2         	37104188	        30.00 ns/op	       0 B/op	       0 allocs/op
BenchmarkWrite/small_frames-2   	  520120	      2297 ns/op	 681.42 MB/s	         3.589 ns/frame	       0 B/op	       0 allocs/op
PASS`
	m := parse(out)
	if got := median(m["BenchmarkAdmit/loadshed/all ns/op"]); got != 32.10 {
		t.Errorf("admit ns/op median = %v, want 32.1", got)
	}
	if got := m["BenchmarkWrite/small_frames ns/frame"]; len(got) != 1 || got[0] != 3.589 {
		t.Errorf("ns/frame = %v, want [3.589]", got)
	}
	if got := m["BenchmarkAdmit/loadshed/all allocs/op"]; len(got) != 2 || got[0] != 0 {
		t.Errorf("allocs = %v", got)
	}
}
