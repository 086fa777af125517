// Command idleconns measures what the library costs per connection at
// scale: the resident memory of a server holding 10 000 idle client
// connections, with the library (grpcmgmt.New defaults) and without (bare
// grpc-go), and the time of a lame-duck Tracker.GoAwayAll over all of them
// (BENCH.md: conn.idle_bytes_overhead, goaway.all_10k_ms).
//
//	go -C bench run ./cmd/idleconns                     (part of make bench)
//	go -C bench run ./cmd/idleconns -conns 2000 -pairs 3
//	go -C bench run ./cmd/idleconns -out out/results.json
//
// Each leg starts a fresh server process (this program, re-executed with
// -serve), opens the connections from this process as minimal HTTP/2
// clients (the preface, SETTINGS, one unary gRPC call, then nothing; so
// that 10 000 of them cost the client side a file descriptor and a few KiB
// each), and asks the server for its resident set size (VmRSS) after a
// garbage collection that returns freed memory to the system
// (runtime.GC, debug.FreeOSMemory), before and after. Legs alternate bare
// and library (the first leg of a pair alternates too); each figure is the
// median over pairs, with the extremes (_min, _max).
//
// Two things keep the figure from moving by hundreds of bytes per
// connection between legs of the same code:
//
//   - Warm-up: -warmup connections are opened before the first
//     measurement (and closed before GoAwayAll), so that what the first
//     connections cost once (code paged in, pools, lazily made state) is in
//     the baseline, not divided among the measured ones.
//   - Batches: the connections are opened -batch at a time and the server
//     collects its garbage after each batch, as a server whose connections
//     arrive over time collects between them. Opened in one burst, the
//     garbage the handshakes made since the server's last collection stays
//     as free space in heap spans that the idle connections' objects keep
//     in use, and how much that is depends on where that last collection
//     happened to fall: the per-connection RSS of one build moved by
//     hundreds of bytes between legs while its live heap moved by a few.
//
// -burst-pairs adds pairs whose connections are opened in one burst after
// the warm-up, as they were before the batches, for reference: their
// library − bare difference is conn.idle_bytes_overhead_burst.
//
// IDLECONNS_HEAPPROFILE=1 writes each server's heap profile after the
// measurement (idleconns-bare.heap, idleconns-library.heap; every
// allocation sampled):
//
//	go tool pprof -sample_index=inuse_space -diff_base idleconns-bare.heap idleconns idleconns-library.heap
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"

	"github.com/grpcmgmt/grpcmgmt"
	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

func main() {
	serve := flag.String("serve", "", `internal: run as the server leg ("bare" or "library")`)
	conns := flag.Int("conns", 10_000, "idle connections per leg")
	pairs := flag.Int("pairs", 3, "interleaved bare/library pairs (at least 3 for a figure)")
	burstPairs := flag.Int("burst-pairs", 0, "more pairs with the connections opened in one burst (conn.idle_bytes_overhead_burst)")
	batch := flag.Int("batch", 500, "connections opened between two garbage collections of the server")
	warm := flag.Int("warmup", 500, "connections opened before the baseline measurement (they are in the baseline)")
	out := flag.String("out", "", "merge the figures into this results.json")
	flag.Parse()
	raiseNoFile()
	if *serve != "" {
		if os.Getenv("IDLECONNS_HEAPPROFILE") != "" {
			runtime.MemProfileRate = 1 // every allocation, for an exact per-connection breakdown
		}
		if err := runServer(*serve); err != nil {
			log.Fatalf("idleconns server: %v", err)
		}
		return
	}
	if *batch <= 0 || *warm < 0 || *conns <= 0 {
		log.Fatal("idleconns: -conns and -batch must be positive, -warmup not negative")
	}
	if err := run(config{n: *conns, warm: *warm, batch: *batch, pairs: *pairs, burstPairs: *burstPairs}, *out); err != nil {
		log.Fatalf("idleconns: %v", err)
	}
}

// raiseNoFile raises the soft limit on open files to the hard limit: each
// side holds one descriptor per connection.
func raiseNoFile() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func noFileLimit() uint64 {
	var l syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// config is what the legs of one run share.
type config struct {
	n, warm, batch    int // measured connections, warm-up connections, connections per batch
	pairs, burstPairs int
}

func run(cfg config, out string) error {
	if need := uint64(cfg.n + cfg.warm + 100); noFileLimit() < need {
		return fmt.Errorf("open files limited to %d (ulimit -n), need %d: raise the hard limit", noFileLimit(), need)
	}
	var overhead, heapOverhead, bareB, libB, burst, allMs, writtenMs []float64
	for p := range cfg.pairs + cfg.burstPairs {
		modes := []string{"bare", "library"}
		if p%2 == 1 {
			modes = []string{"library", "bare"}
		}
		batch, kind := cfg.batch, "batches"
		if p >= cfg.pairs {
			batch, kind = cfg.n, "burst"
		}
		var rss, heap = map[string]float64{}, map[string]float64{}
		for _, mode := range modes {
			l, err := leg(mode, cfg.n, cfg.warm, batch)
			if err != nil {
				return fmt.Errorf("pair %d (%s), %s: %w", p, kind, mode, err)
			}
			rss[mode], heap[mode] = l.rssPerConn, l.heapPerConn
			fmt.Printf("pair %d %-7s %-7s  RSS %+8.0f B/conn  live heap %+7.0f  heap spans %+7.0f  stacks %+7.0f", p, kind, mode, l.rssPerConn, l.heapPerConn, l.spansPerConn, l.stackPerConn)
			if mode == "library" {
				allMs = append(allMs, l.goAwayAllMs)
				writtenMs = append(writtenMs, l.writtenMs)
				fmt.Printf("  GoAwayAll over %d: %.1f ms, all written after %.1f ms", cfg.n, l.goAwayAllMs, l.writtenMs)
			}
			fmt.Println()
		}
		if p >= cfg.pairs {
			burst = append(burst, rss["library"]-rss["bare"])
			continue
		}
		overhead = append(overhead, rss["library"]-rss["bare"])
		heapOverhead = append(heapOverhead, heap["library"]-heap["bare"])
		bareB = append(bareB, rss["bare"])
		libB = append(libB, rss["library"])
	}
	res := cluster.Results{}
	put := func(name string, v []float64) {
		if len(v) == 0 {
			return
		}
		s := slices.Sorted(slices.Values(v))
		res[name] = s[len(s)/2]
		res[name+"_min"] = s[0]
		res[name+"_max"] = s[len(s)-1]
		fmt.Printf("%s per pair: %s\n", name, joinFloats(v))
	}
	put("conn.idle_bytes_overhead", overhead)
	put("conn.idle_heap_bytes_overhead", heapOverhead)
	put("conn.idle_bytes_bare", bareB)
	put("conn.idle_bytes_library", libB)
	put("conn.idle_bytes_overhead_burst", burst)
	all := fmt.Sprintf("goaway.all_%d", cfg.n)
	if cfg.n == 10_000 {
		all = "goaway.all_10k"
	}
	put(all+"_ms", allMs)
	put(all+"_written_ms", writtenMs)
	res.PrintTable(os.Stdout)
	if out != "" {
		root, _ := os.Getwd()
		return res.Merge(out, root)
	}
	return nil
}

// joinFloats formats v, one figure per pair, for the log.
func joinFloats(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', 1, 64)
	}
	return strings.Join(s, " ")
}

type legResult struct {
	rssPerConn, heapPerConn float64
	goAwayAllMs, writtenMs  float64
	stackPerConn            float64 // goroutine stacks
	spansPerConn            float64 // heap spans in use (live objects and the free space in their spans)
	goAwaySent              int
}

// leg starts a server in mode, opens warm idle connections, measures it,
// opens n more, batch at a time with a garbage collection of the server
// after each batch, measures again and, with the library, closes the
// warm-up connections and times GoAwayAll over the n.
func leg(mode string, n, warm, batch int) (legResult, error) {
	self, err := os.Executable()
	if err != nil {
		return legResult{}, err
	}
	cmd := exec.Command(self, "-serve", mode)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return legResult{}, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return legResult{}, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return legResult{}, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(outPipe)
	ask := func(q string) ([]string, error) {
		if _, err := fmt.Fprintln(in, q); err != nil {
			return nil, err
		}
		if !lines.Scan() {
			return nil, fmt.Errorf("server ended: %v", lines.Err())
		}
		return strings.Fields(lines.Text()), nil
	}
	if !lines.Scan() {
		return legResult{}, errors.New("server did not start")
	}
	addr := strings.TrimPrefix(lines.Text(), "listening ")
	var warmConns, cs []net.Conn
	defer func() {
		for _, c := range slices.Concat(warmConns, cs) {
			c.Close()
		}
	}()
	// open opens k connections into *to, batch at a time, and has the server
	// collect its garbage after each batch.
	open := func(to *[]net.Conn, k int) error {
		for len(*to) < k {
			more, err := dialIdle(addr, min(batch, k-len(*to)))
			*to = append(*to, more...)
			if err != nil {
				return err
			}
			if _, err := ask("gc"); err != nil {
				return err
			}
		}
		return nil
	}
	if err := open(&warmConns, warm); err != nil {
		return legResult{}, fmt.Errorf("warm-up: %w", err)
	}
	before, err := ask("measure")
	if err != nil {
		return legResult{}, err
	}
	if err := open(&cs, n); err != nil {
		return legResult{}, err
	}
	after, err := ask("measure")
	if err != nil {
		return legResult{}, err
	}
	if got, _ := strconv.Atoi(after[2]); got != n+warm && got >= 0 {
		return legResult{}, fmt.Errorf("server counts %d connections, want %d", got, n+warm)
	}
	if os.Getenv("IDLECONNS_HEAPPROFILE") != "" {
		if _, err := ask("heapprofile"); err != nil {
			return legResult{}, err
		}
	}
	var r legResult
	r.rssPerConn = (atof(after[0]) - atof(before[0])) / float64(n)
	r.heapPerConn = (atof(after[1]) - atof(before[1])) / float64(n)
	r.stackPerConn = (atof(after[3]) - atof(before[3])) / float64(n)
	r.spansPerConn = (atof(after[4]) - atof(before[4])) / float64(n)
	if mode == "library" {
		// GoAwayAll over the n: the warm-up connections go first (the
		// Tracker forgets each at its EOF).
		for _, c := range warmConns {
			c.Close()
		}
		warmConns = nil
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			f, err := ask("count")
			if err != nil {
				return legResult{}, err
			}
			if got, _ := strconv.Atoi(f[0]); got == n {
				break
			} else if time.Now().After(deadline) {
				return legResult{}, fmt.Errorf("server counts %d connections 30 s after the warm-up ones closed, want %d", got, n)
			}
		}
		f, err := ask("goawayall")
		if err != nil {
			return legResult{}, err
		}
		r.goAwayAllMs = atof(f[0])
		r.goAwaySent, _ = strconv.Atoi(f[1])
		r.writtenMs = atof(f[2])
		if r.goAwaySent != n {
			return legResult{}, fmt.Errorf("GoAwayAll sent %d GOAWAYs, want %d", r.goAwaySent, n)
		}
	}
	return r, nil
}

func atof(s string) float64 { v, _ := strconv.ParseFloat(s, 64); return v }

// dialIdle opens n connections to addr, each making one EmptyCall as a raw
// HTTP/2 client and then staying idle (the server holds an idle gRPC
// transport per connection).
func dialIdle(addr string, n int) ([]net.Conn, error) {
	out := make([]net.Conn, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := callOnce(addr)
			if err != nil {
				errs <- err
				return
			}
			out[i] = c
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return slices.DeleteFunc(out, func(c net.Conn) bool { return c == nil }), err
	}
	return out, nil
}

// callOnce connects, makes one unary call and returns the idle connection.
func callOnce(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		c.Close()
		return nil, err
	}
	fr := http2.NewFramer(c, c)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, h := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.testing.TestService/EmptyCall"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: h[0], Value: h[1]})
	}
	err = errors.Join(fr.WriteSettings(),
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}),
		fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}))
	for err == nil {
		var f http2.Frame
		if f, err = fr.ReadFrame(); err != nil {
			break
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				err = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				err = fr.WritePing(true, f.Data)
			}
		case *http2.HeadersFrame:
			if f.StreamEnded() {
				return c, nil // the call's trailers: done
			}
		case *http2.GoAwayFrame, *http2.RSTStreamFrame:
			err = fmt.Errorf("call failed: %v", f)
		}
	}
	c.Close()
	return nil, err
}

// runServer serves the test service, bare or with the library, and answers
// the driver on stdin: "measure" → RSS, live heap, connections (-1 when
// bare), goroutine stacks and heap spans in use, in bytes; "gc" → "ok"
// after a garbage collection; "count" → connections; "heapprofile" → the
// error writing it; "goawayall" → milliseconds, GOAWAYs sent and
// milliseconds until all were written.
func runServer(mode string) error {
	var opts []grpc.ServerOption
	var m *grpcmgmt.Manager
	var reader *sdkmetric.ManualReader
	count := func() int { return -1 }
	switch mode {
	case "bare":
	case "library":
		var err error
		reader = sdkmetric.NewManualReader()
		m, err = grpcmgmt.New(grpcmgmt.WithInsecure(),
			grpcmgmt.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
		if err != nil {
			return err
		}
		defer m.Shutdown(context.Background())
		opts = m.ServerOptions()
		count = m.GoAwayTracker().Len
	default:
		return fmt.Errorf("-serve must be bare or library, got %q", mode)
	}
	srv := grpc.NewServer(opts...)
	replica.New(replica.Config{Name: "idle"}).Register(srv)
	if m != nil {
		if err := m.Register(srv); err != nil {
			return err
		}
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	// The bare server's connections are not counted: a wrapper around them
	// would hide the socket from grpc-go (no read-on-ready) and cost memory
	// itself. Every connection made a call, so the server holds it.
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	fmt.Printf("listening %s\n", lis.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "measure":
			runtime.GC()
			debug.FreeOSMemory()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			fmt.Printf("%d %d %d %d %d\n", rss(), ms.HeapAlloc, count(), ms.StackInuse, ms.HeapInuse)
		case "gc":
			runtime.GC()
			fmt.Println("ok")
		case "count":
			fmt.Println(count())
		case "heapprofile":
			// For finding what a connection costs: go tool pprof -sample_index=inuse_space.
			runtime.GC()
			f, err := os.Create(fmt.Sprintf("idleconns-%s.heap", mode))
			if err == nil {
				err = pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
			fmt.Println(err)
		case "goawayall":
			start := time.Now()
			sent := m.GoAwayTracker().GoAwayAll(goaway.ReasonDrain)
			call := time.Since(start)
			// GoAwayAll returns once every GOAWAY is asked for; an idle
			// connection's frame is written on its own goroutine. Written:
			// until the sent counter has them all.
			for sentCount(reader) < int64(sent) && time.Since(start) < 30*time.Second {
				time.Sleep(time.Millisecond)
			}
			fmt.Printf("%.3f %d %.3f\n", ms(call), sent, ms(time.Since(start)))
		}
	}
	return nil
}

// rss returns this process's resident set size in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return -1
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// sentCount returns grpcmgmt.goaway.sent summed over reasons.
func sentCount(r *sdkmetric.ManualReader) int64 {
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		return -1
	}
	var n int64
	for _, sm := range rm.ScopeMetrics {
		for _, mt := range sm.Metrics {
			if sum, ok := mt.Data.(metricdata.Sum[int64]); ok && mt.Name == "grpcmgmt.goaway.sent" {
				for _, dp := range sum.DataPoints {
					n += dp.Value
				}
			}
		}
	}
	return n
}
