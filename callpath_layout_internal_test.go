package grpcmgmt

import (
	"testing"
	"unsafe"
)

// A callPath fills one cache line exactly, so that every call reads one
// line of it wherever the allocator puts it (see its padding).
func TestCallPathOneLine(t *testing.T) {
	if n := unsafe.Sizeof(callPath{}); n != 64 {
		t.Errorf("callPath is %d bytes, want 64 (pad it to a cache line)", n)
	}
	for range 20 {
		c := &callPath{}
		callPathSink = c // on the heap, as ServerOptions's
		if a := uintptr(unsafe.Pointer(c)); a%64 != 0 {
			t.Errorf("a callPath at %#x, %d bytes into a cache line", a, a%64)
		}
	}
}

var callPathSink *callPath
