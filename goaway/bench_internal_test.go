package goaway

import (
	"encoding/binary"
	"net"
	"testing"
	"time"
)

// discardConn is a net.Conn that drops writes, so the benchmark measures
// the wrapper and not the kernel.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (discardConn) Close() error                { return nil }

// No addresses: the Draining index skips the connection (the embedded nil
// net.Conn would panic; BenchmarkWrite did since the index was added).
func (discardConn) LocalAddr() net.Addr  { return nil }
func (discardConn) RemoteAddr() net.Addr { return nil }

// frames builds a write buffer of n frames with payloads of the given
// size, in the pattern of gRPC responses: HEADERS, DATA, HEADERS
// (trailers), ...
func frames(n, size int) []byte {
	var b []byte
	for i := range n {
		typ, flags := byte(0x0), byte(0)
		if i%3 != 1 {
			typ, flags = frameHeaders, flagEndHeaders
		}
		b = append(b, byte(size>>16), byte(size>>8), byte(size), typ, flags)
		b = binary.BigEndian.AppendUint32(b, uint32(2*(i/3)+1))
		b = append(b, make([]byte, size)...)
	}
	return b
}

// BenchmarkWrite measures the frame tracking cost of the wrapper's Write
// per written frame (figure goaway.write_ns_per_frame): small frames are
// the worst case (unary gRPC: HEADERS, a small DATA, trailers), 16 KiB
// DATA frames the streaming case.
func BenchmarkWrite(b *testing.B) {
	for _, bc := range []struct {
		name         string
		n, size      int
		reportFigure bool
	}{
		{"small_frames", 64, 24, true},
		{"data_16KiB", 3, 16 << 10, false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			t, err := NewTracker(Config{Grace: time.Hour})
			if err != nil {
				b.Fatal(err)
			}
			c := t.track(discardConn{}).(*conn)
			buf := frames(bc.n, bc.size)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*bc.n), "ns/frame")
		})
	}
}

// BenchmarkWriteBare is the same Write on the bare connection, for
// comparison in the same run.
func BenchmarkWriteBare(b *testing.B) {
	var c net.Conn = discardConn{}
	buf := frames(64, 24)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/frame")
}

// BenchmarkRead measures the read-side call counting per frame.
func BenchmarkRead(b *testing.B) {
	t, err := NewTracker(Config{Grace: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	c := t.track(discardConn{}).(*conn)
	c.prefaceLeft = 0
	buf := frames(64, 24)
	b.ReportAllocs()
	for b.Loop() {
		c.scanRead(buf)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*64), "ns/frame")
}
