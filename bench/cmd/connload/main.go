// Command connload is a client process of the scale scenario: many
// standard grpc-go channels (pick_first, one connection each) to one
// target, each making calls at a low rate, a few "heavy" ones at a higher
// rate, for a fixed time. It prints one JSON object with the calls per
// second (succeeded, failed), the failures by code, and the replica each
// heavy channel was served by, second by second.
//
//	connload -target 127.0.0.1:8080 -conns 500 -heavy 1 -rate 0.5 -for 60s -t0 <unix ns>
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// Output is what connload prints.
type Output struct {
	Calls, Failed int
	Codes         map[string]int
	// PerSecond holds [succeeded, failed] for each second since t0.
	PerSecond [][2]int
	// Heavy holds, per heavy channel, the replica that served its last call
	// in each second since t0 ("" if none).
	Heavy [][]string
}

func main() {
	target := flag.String("target", "", "host:port (pick_first, one connection per channel)")
	conns := flag.Int("conns", 500, "channels (one connection each)")
	heavy := flag.Int("heavy", 0, "how many of the channels are heavy")
	rate := flag.Float64("rate", 0.5, "calls per second of a light channel")
	factor := flag.Float64("heavy-factor", 10, "a heavy channel's rate ÷ a light one's")
	dur := flag.Duration("for", time.Minute, "how long to run, from t0")
	t0ns := flag.Int64("t0", 0, "time zero (unix ns) for the per-second counts (default now)")
	timeout := flag.Duration("timeout", 5*time.Second, "deadline of a call")
	flag.Parse()
	if err := run(*target, *conns, *heavy, *rate, *factor, *dur, *t0ns, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "connload:", err)
		os.Exit(1)
	}
}

func run(target string, n, heavy int, rate, factor float64, dur time.Duration, t0ns int64, timeout time.Duration) error {
	t0 := time.Now()
	if t0ns != 0 {
		t0 = time.Unix(0, t0ns)
	}
	secs := int(dur/time.Second) + 1
	out := Output{Codes: map[string]int{}, PerSecond: make([][2]int, secs), Heavy: make([][]string, heavy)}
	for i := range out.Heavy {
		out.Heavy[i] = make([]string, secs)
	}
	end := t0.Add(dur)
	ctx, cancel := context.WithDeadline(context.Background(), end)
	defer cancel()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer cc.Close()
		cc.Connect()
		client := testpb.NewTestServiceClient(cc)
		interval := time.Duration(float64(time.Second) / rate)
		if i < heavy {
			interval = time.Duration(float64(interval) / factor)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A random phase, then one call per interval (±10 %).
			next := time.Now().Add(time.Duration(rand.Int64N(int64(interval))))
			for {
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(next)):
				}
				// The call's deadline is its own, not the run's: a call the end
				// of the run would cut is not a failure of the server.
				var hdr metadata.MD
				cctx, ccancel := context.WithTimeout(context.Background(), timeout)
				_, err := client.EmptyCall(cctx, &testpb.Empty{}, grpc.Header(&hdr))
				ccancel()
				if time.Now().After(end) {
					return // ended after the run: not counted
				}
				s := int(time.Since(t0) / time.Second)
				mu.Lock()
				if s >= 0 && s < secs {
					out.Calls++
					if err != nil {
						out.Failed++
						out.Codes[status.Code(err).String()]++
						out.PerSecond[s][1]++
					} else {
						out.PerSecond[s][0]++
						if v := hdr.Get(replica.HeaderName); i < heavy && len(v) > 0 {
							out.Heavy[i][s] = v[0]
						}
					}
				}
				mu.Unlock()
				next = next.Add(interval + time.Duration(rand.Int64N(int64(interval)/5+1)) - interval/10)
			}
		}()
	}
	wg.Wait()
	return json.NewEncoder(os.Stdout).Encode(out)
}
