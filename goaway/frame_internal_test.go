package goaway

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"
	"testing"
	"time"
)

// memConn is an in-memory net.Conn that records what is written to it. The
// fuzz targets use it to run millions of splits; the end-to-end tests use
// real TCP.
type memConn struct {
	mu  sync.Mutex
	out bytes.Buffer
	in  *bytes.Reader
}

func (m *memConn) Write(p []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.out.Write(p)
}

func (m *memConn) Read(p []byte) (int, error)  { return m.in.Read(p) }
func (m *memConn) Close() error                { return nil }
func (m *memConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }
func (m *memConn) RemoteAddr() net.Addr        { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 2} }
func (m *memConn) SetDeadline(time.Time) error { return nil }
func (m *memConn) SetReadDeadline(time.Time) error {
	return nil
}
func (m *memConn) SetWriteDeadline(time.Time) error { return nil }

func (m *memConn) bytes() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.out.Bytes())
}

// genFrames turns fuzz bytes into a valid frame stream that starts with a
// SETTINGS frame, and returns the stream and the offset where each frame
// starts (plus the end).
//
// HEADERS frames without END_HEADERS are followed by CONTINUATION frames
// up to one with END_HEADERS; open[i] is true where frame i starts inside
// such a field block (no frame may be inserted there).
func genFrames(spec []byte) (stream []byte, starts []int, open []bool) {
	inBlock := false
	frame := func(typ, flags byte, sid uint32, n int) {
		starts = append(starts, len(stream))
		open = append(open, inBlock)
		if typ == frameHeaders || typ == frameCont {
			inBlock = flags&flagEndHeaders == 0
		}
		stream = append(stream, byte(n>>16), byte(n>>8), byte(n), typ, flags)
		stream = binary.BigEndian.AppendUint32(stream, sid)
		stream = append(stream, make([]byte, n)...)
	}
	frame(0x4, 0, 0, 6*(len(spec)%3))
	// At most 64 frames and about 256 KiB, so that one input runs fast.
	for i := 0; i+2 < len(spec) && len(starts) < 64 && len(stream) < 256<<10; i += 3 {
		typ := spec[i] % 10
		if typ == framePush {
			typ = frameHeaders
		}
		if inBlock {
			typ = frameCont
		} else if typ == frameCont {
			typ = 0x0
		}
		flags := spec[i+2] & flagEndHeaders
		n := int(binary.BigEndian.Uint16(spec[i+1:]))
		if spec[i]&0x80 == 0 {
			n %= 300
		} else {
			n *= 3 // up to ~192 KiB, beyond the default 16 KiB frame size
		}
		var sid uint32
		if typ != frameGoAway && typ != 0x4 && typ != 0x6 {
			sid = uint32(spec[i+1]) | 1
		}
		frame(typ, flags, sid, n)
	}
	if inBlock {
		frame(frameCont, flagEndHeaders, 1, 0)
	}
	starts = append(starts, len(stream))
	open = append(open, false)
	return stream, starts, open
}

// splitAt cuts stream into writes whose lengths come from cuts.
func splitAt(stream, cuts []byte) [][]byte {
	var out [][]byte
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if len(cuts) > 0 {
			n = int(cuts[i%len(cuts)])*int(cuts[(i+1)%len(cuts)]%32+1) + 1
		}
		n = min(n, len(stream))
		out = append(out, stream[:n])
		stream = stream[n:]
	}
	return out
}

// settle waits for a direct GOAWAY write in flight: its goroutine holds
// the write lock until it is done.
func settle(c *conn) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
}

func newTestTracker(tb testing.TB, cfg Config) *Tracker {
	tb.Helper()
	if cfg.Grace == 0 {
		cfg.Grace = time.Hour
	}
	t, err := NewTracker(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return t
}

// checkInsertion writes the frame stream described by spec in the writes
// that cuts describes, asks for a GOAWAY before write number at, and checks
// that the GOAWAY lands on the first frame boundary at or after that point
// (never before the end of the first frame), or is dropped if a GOAWAY of
// grpc-go's own comes first.
func checkInsertion(t *testing.T, spec, cuts []byte, at uint8) {
	t.Helper()
	stream, starts, open := genFrames(spec)
	writes := splitAt(stream, cuts)
	req := int(at) % (len(writes) + 1)
	tr := newTestTracker(t, Config{})
	mc := &memConn{}
	c := tr.track(mc).(*conn)
	defer c.Close()
	pos := 0
	for i, w := range writes {
		if i == req {
			if !c.goAway(ReasonManual) && !c.has(fOwnGoAway) {
				t.Fatal("goAway refused on a connection grpc-go has not drained")
			}
		}
		n, err := c.Write(w)
		if n != len(w) || err != nil {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(w))
		}
		pos += len(w)
	}
	if req == len(writes) {
		c.goAway(ReasonManual)
	}
	settle(c)
	reqPos := 0
	for _, w := range writes[:req] {
		reqPos += len(w)
	}
	// Expected insertion point: first frame start >= reqPos, after the
	// first frame; none if a GOAWAY frame starts before it.
	want := -1
	for i, s := range starts[1:] {
		if s >= reqPos && !open[i+1] {
			want = s
			break
		}
	}
	for _, s := range starts[:len(starts)-1] {
		if s < want && stream[s+3] == frameGoAway {
			want = -1
			break
		}
	}
	got := mc.bytes()
	ga := appendGoAway(nil, debugPrefix+string(ReasonManual))
	if want < 0 {
		if !bytes.Equal(got, stream) {
			t.Fatalf("stream changed although grpc-go's GOAWAY came first (len %d -> %d)", len(stream), len(got))
		}
		return
	}
	exp := append(append(append([]byte{}, stream[:want]...), ga...), stream[want:]...)
	if !bytes.Equal(got, exp) {
		t.Fatalf("GOAWAY not inserted exactly at offset %d (request at %d, %d writes, %d frames): got %d bytes, want %d",
			want, reqPos, len(writes), len(starts)-1, len(got), len(exp))
	}
}

func TestInsertionAtBoundary(t *testing.T) {
	cases := []struct {
		name       string
		spec, cuts []byte
		at         uint8
	}{
		{"idle after settings", nil, nil, 1},
		{"before settings", []byte{1, 0, 10, 0, 0, 5}, []byte{3}, 0},
		{"header split", []byte{0, 0, 40, 1, 0, 4, 0, 0, 0}, []byte{1, 4}, 3},
		{"large frames", []byte{0x80, 0x30, 0, 0x80, 0x40, 0, 1, 0, 0}, []byte{255, 31}, 2},
		{"own goaway first", []byte{7, 0, 8, 0, 0, 20}, []byte{5, 0}, 9},
		{"own goaway later", []byte{0, 0, 20, 7, 0, 8, 0, 0, 20}, []byte{200, 0}, 1},
		{"at end", []byte{0, 0, 20}, nil, 2},
		{"field block", []byte{1, 0, 8, 9, 0, 8, 9, 0, 4, 0, 0, 3}, []byte{2, 1}, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkInsertion(t, tc.spec, tc.cuts, tc.at) })
	}
}

// FuzzInsertAtBoundary: any split of a valid frame stream into writes gets
// its GOAWAY inserted only at a frame boundary, and never after a GOAWAY of
// grpc-go's own.
func FuzzInsertAtBoundary(f *testing.F) {
	f.Add([]byte{0, 0, 40, 1, 0, 4, 0, 0, 0}, []byte{1, 4}, uint8(3))
	f.Add([]byte{0x80, 0x30, 0, 0x80, 0x40, 0, 1, 0, 0}, []byte{255, 31}, uint8(2))
	f.Add([]byte{7, 0, 8, 0, 0, 20}, []byte{5, 0}, uint8(1))
	f.Fuzz(checkInsertion)
}

// FuzzArbitraryBytes: arbitrary bytes in either direction, split
// arbitrarily, with a GOAWAY asked for midway, never panic and are passed
// through unchanged apart from at most one inserted GOAWAY.
func FuzzArbitraryBytes(f *testing.F) {
	f.Add([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"), []byte{3, 7}, uint8(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0x01, 0x04, 0xff, 0xff, 0xff, 0xff}, []byte{1}, uint8(0))
	f.Fuzz(func(t *testing.T, data, cuts []byte, at uint8) {
		tr := newTestTracker(t, Config{MaxCallsPerConn: 2})
		mc := &memConn{in: bytes.NewReader(data)}
		c := tr.track(mc).(*conn)
		defer c.Close()
		buf := make([]byte, 7)
		for {
			if _, err := c.Read(buf[:int(at)%7+1]); err != nil {
				break
			}
		}
		writes := splitAt(data, cuts)
		for i, w := range writes {
			if i == int(at)%(len(writes)+1) {
				c.goAway(ReasonManual)
			}
			if n, err := c.Write(w); n != len(w) || err != nil {
				t.Fatalf("Write = %d, %v", n, err)
			}
		}
		settle(c)
		got := mc.bytes()
		ga := appendGoAway(nil, debugPrefix+string(ReasonManual))
		switch len(got) - len(data) {
		case 0:
			if !bytes.Equal(got, data) {
				t.Fatal("bytes changed")
			}
		case len(ga):
			i := bytes.Index(got, ga)
			if i < 0 || !bytes.Equal(append(append([]byte{}, got[:i]...), got[i+len(ga):]...), data) {
				t.Fatal("bytes changed beyond one inserted GOAWAY")
			}
		default:
			// MaxCallsPerConn may have asked first: at most one GOAWAY.
			ga2 := appendGoAway(nil, debugPrefix+string(ReasonMaxCalls))
			if len(got)-len(data) != len(ga2) || !bytes.Contains(got, ga2) {
				t.Fatalf("output grew by %d bytes", len(got)-len(data))
			}
		}
	})
}

func TestCountsCalls(t *testing.T) {
	var in []byte
	in = append(in, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"...)
	hdr := func(typ byte, sid uint32, n int) {
		in = append(in, byte(n>>16), byte(n>>8), byte(n), typ, 0)
		in = binary.BigEndian.AppendUint32(in, sid)
		in = append(in, make([]byte, n)...)
	}
	hdr(0x4, 0, 0)
	hdr(0x1, 1, 10) // call 1
	hdr(0x0, 1, 100)
	hdr(0x1, 1, 5)  // trailers: not a call
	hdr(0x1, 3, 10) // call 2
	hdr(0x9, 3, 3)  // CONTINUATION
	hdr(0x1, 2, 10) // even id: not a client stream
	hdr(0x1, 5, 10) // call 3
	// Small reads split every frame (general path); a large read holds
	// them whole (inline path).
	for _, size := range []int{1, 5, 13, 4096} {
		tr := newTestTracker(t, Config{})
		c := tr.track(&memConn{in: bytes.NewReader(in)}).(*conn)
		buf := make([]byte, size)
		for {
			if _, err := c.Read(buf); err != nil {
				break
			}
		}
		if got := c.calls.Load(); got != 3 {
			t.Errorf("reads of %d bytes: calls = %d, want 3", size, got)
		}
		c.Close()
	}
}

func TestNewTrackerValidates(t *testing.T) {
	for _, g := range []time.Duration{-1, time.Microsecond} {
		if _, err := NewTracker(Config{Grace: g}); err == nil {
			t.Errorf("NewTracker(Grace: %v) = nil error", g)
		} else if !bytes.Contains([]byte(err.Error()), []byte("Grace")) {
			t.Errorf("error %q does not name the field", err)
		}
	}
}
