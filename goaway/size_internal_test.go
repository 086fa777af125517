package goaway

import (
	"testing"
	"unsafe"
)

// TestConnSize: a server holds one wrapper per connection for as long as
// the connection lives, idle or not (conn.idle_bytes_overhead), so its
// size is held to the heap size class it fills: 144 bytes for a conn, 192
// for a readyConn (the conn and its read state as one object), 24 for a
// frame cursor (two per connection).
func TestConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are held on 64-bit platforms")
	}
	for _, s := range []struct {
		name      string
		got, want uintptr
	}{
		{"frameCursor", unsafe.Sizeof(frameCursor{}), 24},
		{"conn", unsafe.Sizeof(conn{}), 144},
		{"readyConn", unsafe.Sizeof(readyConn{}), 192},
	} {
		if s.got > s.want {
			t.Errorf("%s is %d bytes, want at most %d: it is kept by every idle connection", s.name, s.got, s.want)
		}
	}
}
