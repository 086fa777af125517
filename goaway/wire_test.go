package goaway_test

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/keepalive"

	"github.com/grpcmgmt/grpcmgmt/goaway"
)

// goAwaySeen is one GOAWAY frame decoded from a server's byte stream.
type goAwaySeen struct {
	last uint32
	ours bool // debug data starts with "grpcmgmt: "
}

// decodeServerStream decodes everything the server wrote on one connection
// with x/net/http2's Framer: every frame must parse (an insertion inside a
// frame, or between HEADERS and CONTINUATION, would not), the first frame
// must be SETTINGS, and the GOAWAYs are returned in order.
func decodeServerStream(t *testing.T, b []byte) (frames int, gas []goAwaySeen) {
	t.Helper()
	fr := http2.NewFramer(io.Discard, bytes.NewReader(b))
	fr.SetMaxReadFrameSize(1<<24 - 1)
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			return frames, gas
		}
		if err != nil {
			t.Fatalf("frame %d does not decode: %v", frames, err)
		}
		if frames == 0 {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				t.Fatalf("first frame is %v, want SETTINGS", f.Header().Type)
			}
		}
		frames++
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			ours := strings.HasPrefix(string(ga.DebugData()), "grpcmgmt: ")
			if ours && (ga.ErrCode != http2.ErrCodeNo || ga.LastStreamID != 1<<31-1 || len(ga.DebugData()) > 64) {
				t.Fatalf("inserted GOAWAY malformed: last=%d code=%v debug=%q", ga.LastStreamID, ga.ErrCode, ga.DebugData())
			}
			gas = append(gas, goAwaySeen{last: ga.LastStreamID, ours: ours})
		}
	}
}

// grpcGoAways counts the GOAWAY frames of grpc-go's own in the complete
// frames of b.
func grpcGoAways(b []byte) int {
	fr := http2.NewFramer(io.Discard, bytes.NewReader(b))
	fr.SetMaxReadFrameSize(1<<24 - 1)
	n := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return n
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok && !strings.HasPrefix(string(ga.DebugData()), "grpcmgmt: ") {
			n++
		}
	}
}

// TestWireGoAways decodes the server's outgoing bytes on every connection
// while GOAWAYs are inserted under multi-frame load, grpc-go's own
// MaxConnectionAge GOAWAYs fire, and GracefulStop drains a connection that
// already got ours; over insecure and TLS connections.
func TestWireGoAways(t *testing.T) {
	for _, tp := range transports(t)[:2] {
		t.Run(tp.name, func(t *testing.T) {
			t.Parallel()
			testWireGoAways(t, tp)
		})
	}
}

func testWireGoAways(t *testing.T, tp transport) {
	tr := newTracker(t, goaway.Config{Grace: 20 * time.Second})
	// The recorder sits between the (TLS) credentials and the wrapper: it
	// records the HTTP/2 frames exactly as the wrapper writes them.
	rec := &recorder{TransportCredentials: tp.server}
	addr, srv := startServer(t,
		grpc.Creds(tr.WrapCredentials(rec)),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 700 * time.Millisecond, MaxConnectionAgeGrace: 20 * time.Second}))
	g := startLoad(dialN(t, 3, addr, tp), 8, 256<<10)

	// Odd connections get ours quickly; even ones only after grpc-go's age
	// GOAWAY is due, so some requests must be refused or suppressed.
	end := time.Now().Add(2500 * time.Millisecond)
	tick := time.NewTicker(50 * time.Millisecond)
	for time.Now().Before(end) {
		<-tick.C
		for _, c := range tr.Conns() {
			if c.ID%2 == 1 || time.Since(c.Start) > 800*time.Millisecond {
				tr.GoAway(c.ID, goaway.ReasonManual)
			}
		}
	}
	tick.Stop()
	g.Stop()
	if g.failed.Load() > 0 {
		t.Errorf("%d of %d calls failed: %v", g.failed.Load(), g.calls.Load(), g.firstErrs())
	}

	// A stream held open on a connection that got our GOAWAY, then
	// GracefulStop: grpc-go's drain GOAWAYs follow ours on that connection.
	cc := dial(t, addr, tp.client)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := testgrpc.NewTestServiceClient(cc).FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	conns := tr.Conns()
	last := conns[len(conns)-1]
	if !tr.GoAway(last.ID, goaway.ReasonDrain) {
		t.Fatal("GoAway on the newest connection was refused")
	}
	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	waitFor(t, 5*time.Second, "grpc-go's drain GOAWAY on the wire", func() bool {
		streams := rec.streams()
		return grpcGoAways(streams[len(streams)-1]) > 0
	})
	if err := s.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatalf("stream on a draining connection failed: %v", err)
	}
	_ = s.CloseSend()
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("stream end: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("GracefulStop did not return")
	}

	var ours, theirs, both, frames int
	for i, b := range rec.streams() {
		n, gas := decodeServerStream(t, b)
		frames += n
		sawOurs, sawTheirs := false, false
		for j, ga := range gas {
			if j > 0 && ga.last > gas[j-1].last {
				t.Errorf("conn %d: GOAWAY %d raises last-stream-id %d -> %d", i, j, gas[j-1].last, ga.last)
			}
			if ga.ours {
				if sawOurs {
					t.Errorf("conn %d: more than one inserted GOAWAY", i)
				}
				if sawTheirs {
					t.Errorf("conn %d: inserted GOAWAY after grpc-go's own", i)
				}
				sawOurs = true
			} else {
				sawTheirs = true
			}
		}
		if sawOurs {
			ours++
		}
		if sawTheirs {
			theirs++
		}
		if sawOurs && sawTheirs {
			both++
		}
	}
	t.Logf("%d connections, %d frames, %d calls; connections with our GOAWAY %d, grpc-go's %d, both %d",
		len(rec.streams()), frames, g.calls.Load(), ours, theirs, both)
	if ours < 3 || theirs < 1 || both < 1 {
		t.Fatalf("scenario not exercised: ours=%d theirs=%d both=%d", ours, theirs, both)
	}
}
