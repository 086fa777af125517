package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/clientconfig"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// Streams is the streams scenario: Replicas example-server replicas on a
// real dnsmasq name, every connection rotated by MaxAge with Grace, and
// standard grpc-go clients holding Streams long-lived server streams
// (StreamingOutputCall, one response every Interval), resumed when they end
// with OK, beside closed-loop unary calls. The replicas' handlers listen to
// goaway.Draining unless IgnoreDrain.
type Streams struct {
	ServerBin     string
	Replicas      int
	Streams       int
	Interval      time.Duration
	MaxAge, Grace time.Duration
	For           time.Duration
	IgnoreDrain   bool
	UnaryCallers  int
	// Node holds the streams from a @grpc/grpc-js client
	// (test/node/stream_client.js) instead of grpc-go.
	Node bool
}

// StreamsResult is what the clients saw and what the replicas counted.
type StreamsResult struct {
	// Messages received, streams resumed after an OK end, and stream ends
	// by status code other than OK.
	Messages, Resumes int
	Ends              map[codes.Code]int
	// GapsMs has, for every resumed or reopened stream, the delay the
	// reconnect added: the time from the last response before it to the
	// first after it, less the Interval between two responses.
	GapsMs []float64
	// PerReplica counts the logical streams by the replica serving them at
	// the end.
	PerReplica map[string]int
	// Cut and Handler are the replicas' grpcmgmt.goaway.drained_streams,
	// summed: streams their connection's close cut, and streams whose
	// handler returned first.
	Cut, Handler int
	UnaryCalls   int
	UnaryFailed  int
}

// Failed counts stream ends with a status other than OK and UNAVAILABLE
// (the status the documented client config retries).
func (r StreamsResult) Failed() int {
	n := 0
	for c, k := range r.Ends {
		if c != codes.Unavailable {
			n += k
		}
	}
	return n
}

// GapQuantile returns the q-quantile of GapsMs (0 if none).
func (r StreamsResult) GapQuantile(q float64) float64 {
	if len(r.GapsMs) == 0 {
		return 0
	}
	g := slices.Clone(r.GapsMs)
	slices.Sort(g)
	return g[int(q*float64(len(g)-1))]
}

// ShareError is the largest abs(share − fair share) ÷ fair share of the
// streams per replica at the end.
func (r StreamsResult) ShareError(replicas int) float64 {
	total := 0
	for _, n := range r.PerReplica {
		total += n
	}
	if total == 0 {
		return 1
	}
	fair := float64(total) / float64(replicas)
	worst := 0.0
	for i := range replicas {
		n := r.PerReplica[fmt.Sprintf("r%d", i+1)]
		worst = max(worst, abs(float64(n)-fair)/fair)
	}
	return worst
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Run runs the scenario in cluster c.
func (s Streams) Run(ctx context.Context, c *Cluster) (StreamsResult, error) {
	res := StreamsResult{Ends: map[codes.Code]int{}, PerReplica: map[string]int{}}
	ips := make([]string, s.Replicas)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	port, err := FreePort(ips...)
	if err != nil {
		return res, err
	}
	metricsPort, err := FreePort(ips...)
	if err != nil {
		return res, err
	}
	for i, ip := range ips {
		args := []string{"-max-connection-age", s.MaxAge.String(), "-max-connection-age-grace", s.Grace.String(),
			"-metrics-listen", fmt.Sprintf("%s:%d", ip, metricsPort), "-log-level", "warn"}
		if s.IgnoreDrain {
			args = append(args, "-ignore-drain")
		}
		if _, err := c.StartReplica(s.ServerBin, fmt.Sprintf("r%d", i+1), ip, port, args...); err != nil {
			return res, err
		}
	}
	dns, err := c.StartDNS("svc.streams.test", 0, ips...)
	if err != nil {
		return res, err
	}
	target := fmt.Sprintf("dns://%s/%s:%d", dns.Addr, dns.Name, port)
	streamClient, err := Dial(target, clientconfig.RoundRobin, 1)
	if err != nil {
		return res, err
	}
	defer streamClient.Close()
	unary, err := Dial(target, clientconfig.RoundRobin, 1)
	if err != nil {
		return res, err
	}
	defer unary.Close()

	// The run ends by cancellation, not by a deadline: a deadline would
	// travel with every stream (grpc-timeout), and the server, whose copy
	// of it expires a moment before the client's, would end the streams
	// with DeadlineExceeded while the client still saw the run as going on
	// (measured: 1 976 such ends in the last moment of a 3 min run).
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := time.AfterFunc(s.For, cancel)
	defer stop.Stop()
	rec := NewRecorder()
	var wg sync.WaitGroup
	wg.Go(func() { unary.ClosedLoop(runCtx, s.UnaryCallers, 10*time.Second, rec) })
	var mu sync.Mutex
	n := int(s.For/s.Interval) + 10
	req := &testpb.StreamingOutputCallRequest{}
	for range n {
		req.ResponseParameters = append(req.ResponseParameters, &testpb.ResponseParameters{Size: 8, IntervalUs: int32(s.Interval / time.Microsecond)})
	}
	cl := testpb.NewTestServiceClient(streamClient.conns[0])
	if s.Node {
		if err := c.nodeStreams(runCtx, s, target, &res); err != nil {
			cancel()
			wg.Wait()
			return res, err
		}
	}
	for range s.Streams * b2i(!s.Node) {
		wg.Go(func() {
			var last time.Time
			current := ""
			for runCtx.Err() == nil {
				st, err := cl.StreamingOutputCall(runCtx, req)
				first := true
				for err == nil {
					if _, err = st.Recv(); err != nil {
						break
					}
					now := time.Now()
					mu.Lock()
					res.Messages++
					if first && !last.IsZero() {
						res.GapsMs = append(res.GapsMs, float64(now.Sub(last)-s.Interval)/float64(time.Millisecond))
					}
					mu.Unlock()
					if first {
						if hdr, err := st.Header(); err == nil {
							if v := hdr.Get(replica.HeaderName); len(v) > 0 {
								current = v[0]
							}
						}
					}
					first, last = false, now
				}
				if runCtx.Err() != nil {
					break
				}
				mu.Lock()
				if errors.Is(err, io.EOF) {
					res.Resumes++
				} else {
					res.Ends[status.Code(err)]++
				}
				mu.Unlock()
			}
			mu.Lock()
			res.PerReplica[current]++
			mu.Unlock()
		})
	}
	wg.Wait()
	w := rec.Window(0, time.Hour)
	res.UnaryCalls, res.UnaryFailed = w.OK+w.Failed, w.Failed
	for _, ip := range ips {
		m, err := scrape(fmt.Sprintf("http://%s:%d/metrics", ip, metricsPort), "grpcmgmt_goaway_drained_streams_total")
		if err != nil {
			return res, err
		}
		res.Cut += int(m[`ended="cut"`])
		res.Handler += int(m[`ended="handler"`])
	}
	return res, nil
}

// scrape reads the Prometheus text at url and sums the samples of metric
// by each of their label pairs ("ended=\"cut\"" → sum).
func scrape(url, metric string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, metric+"{") {
			continue
		}
		i, j := strings.Index(line, "{"), strings.LastIndex(line, "}")
		v, err := strconv.ParseFloat(strings.TrimSpace(line[j+1:]), 64)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(line[i+1:j], ",") {
			out[l] += v
		}
	}
	return out, sc.Err()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// nodeStreams runs test/node/stream_client.js for s.For and adds what it
// reports to res. grpc-js needs GRPC_NODE_USE_ALTERNATIVE_RESOLVER to query
// the DNS server a dns://ADDR/NAME target names.
func (c *Cluster) nodeStreams(ctx context.Context, s Streams, target string, res *StreamsResult) error {
	bin, err := lookPath("node")
	if err != nil {
		return Require("node")
	}
	opts, err := json.Marshal(map[string]any{"target": target, "serviceConfig": clientconfig.RoundRobin, "streams": s.Streams,
		"intervalMs": s.Interval.Milliseconds(), "durationMs": s.For.Milliseconds()})
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, "stream_client.js", string(opts))
	cmd.Dir = filepath.Join(c.Root, "test", "node")
	cmd.Env = append(os.Environ(), "GRPC_NODE_USE_ALTERNATIVE_RESOLVER=true")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("node stream client: %v: %s", err, tail(errb.String()))
	}
	var r struct {
		Messages, Resumes int
		Ends              map[string]int
		GapsMs            []float64
		PerReplica        map[string]int
	}
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		return fmt.Errorf("node stream client output %q: %v", tail(out.String()), err)
	}
	res.Messages, res.Resumes, res.PerReplica = r.Messages, r.Resumes, r.PerReplica
	for _, g := range r.GapsMs {
		res.GapsMs = append(res.GapsMs, g-float64(s.Interval.Milliseconds()))
	}
	for code, n := range r.Ends {
		k, err := strconv.Atoi(code)
		if err != nil {
			return fmt.Errorf("node stream client: status code %q", code)
		}
		res.Ends[codes.Code(k)] += n
	}
	return nil
}
