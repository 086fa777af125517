package cluster

import (
	"context"
	"fmt"
	"time"
)

// RebalanceArgs are the examples/server flags that tune fair-share
// rebalancing in the short scenarios: a lookup every 500 ms and a Settle
// of 2 s (dnsmasq here answers with a 1 s TTL, so the replicas see a
// change within 1.5 s of each other; Settle is also the start-up grace,
// and these scenarios scale out 3 to 5 s after the replicas start), every
// other setting at the library's defaults. The replica-set name and
// resolver are added by the scenario (ScaleUpL4.ReplicaSetDNS,
// ScaleUpDNS).
func RebalanceArgs() []string {
	return []string{"-replica-set-interval", "500ms", "-rebalance-settle", "2s"}
}

// BaselineArgs are the examples/server flags of a replica without the
// library's connection management: no max age, no idle close, no
// rebalancing.
func BaselineArgs() []string {
	return []string{"-max-connection-age", "8760h", "-max-connection-idle", "8760h"}
}

// replicaSetDNS starts a dnsmasq serving name with ips and returns args
// plus the flags that make examples/server watch it. With an empty name it
// returns args unchanged and a nil DNS.
func (c *Cluster) replicaSetDNS(name string, ips []string, args []string) ([]string, *DNS, error) {
	if name == "" {
		return args, nil, nil
	}
	dns, err := c.StartDNS(name, 0, ips...)
	if err != nil {
		return nil, nil, err
	}
	out := append([]string{"-replica-set-name", name, "-replica-set-resolver", dns.Addr}, args...)
	return out, dns, nil
}

// ScaleUpDNS is the scaleup_dns scenario: Replicas replicas behind a real
// dnsmasq, standard grpc-go clients (dns://DNS/NAME:PORT, round_robin,
// grpc-go's default 30 s minimum between re-resolutions) under closed-loop
// load; at AddAt one more replica starts answering in DNS. The replicas
// watch the same name (-replica-set-name), as they would watch their
// headless Service. A grpc-go client re-resolves only when a connection
// ends or gets a GOAWAY, at most once per 30 s: the rebalancer's GOAWAYs
// are what make every client look again.
type ScaleUpDNS struct {
	ServerBin   string
	ServerArgs  []string // flags for every replica (the lever under test)
	Replicas    int      // before the scale-out
	Conns       int      // client channels (each round_robin over every address)
	Callers     int
	AddAt, For  time.Duration
	CallTimeout time.Duration
	// Name is the DNS name; default "svc.scaleup.test".
	Name string
	// Stack is the client implementation (GoStack: in-process grpc-go).
	Stack Stack
	// MinResolution is an external client's re-resolution floor (0: its
	// default, 30 s; see ExternalLoad.MinResolution).
	MinResolution time.Duration
}

// Run runs the scenario in cluster c.
func (s ScaleUpDNS) Run(ctx context.Context, c *Cluster) (ScaleUpResult, error) {
	name := s.Name
	if name == "" {
		name = "svc.scaleup.test"
	}
	ips := make([]string, s.Replicas+1)
	for i := range ips {
		ips[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	port, err := FreePort(ips...)
	if err != nil {
		return ScaleUpResult{}, err
	}
	args, dns, err := c.replicaSetDNS(name, ips[:s.Replicas], s.ServerArgs)
	if err != nil {
		return ScaleUpResult{}, err
	}
	var newName string
	for i, ip := range ips {
		r, err := c.StartReplica(s.ServerBin, fmt.Sprintf("r%d", i+1), ip, port, args...)
		if err != nil {
			return ScaleUpResult{}, err
		}
		newName = r.Name
	}
	l := dnsLoad(s.Stack, dns, port)
	l.MinResolution = s.MinResolution
	rec, err := c.loadThenGrow(ctx, l, s.Conns, s.Callers, s.CallTimeout, s.AddAt, s.For, func() error { return dns.Set(ips...) })
	if err != nil {
		return ScaleUpResult{}, err
	}
	return fairShare(rec, s.AddAt, s.For, s.Replicas+1, newName), nil
}

// fairShare computes a scale-up's result from the calls recorded: when the
// new replica first held ≥ 90 % of its fair share (1/replicas of the calls)
// for 3 s in a row, its share at the end, and the failed calls.
func fairShare(rec *Recorder, addAt, dur time.Duration, replicas int, newName string) ScaleUpResult {
	secs := int(dur / time.Second)
	per := rec.PerSecond(secs)
	fair := 1.0 / float64(replicas)
	res := ScaleUpResult{SecondsToFairShare: -1, PerSec: per, NewName: newName}
	run := 0
	for i := int(addAt / time.Second); i < secs; i++ {
		total := 0
		for _, v := range per[i] {
			total += v
		}
		share := 0.0
		if total > 0 {
			share = float64(per[i][newName]) / float64(total)
		}
		if share < 0.9*fair {
			run = 0
			continue
		}
		if run++; run == 3 {
			res.SecondsToFairShare = max(0, float64(i-2)-addAt.Seconds())
			break
		}
	}
	res.EndShare = rec.Window(dur-3*time.Second, dur).Share(newName) / fair
	all := rec.Window(0, dur+time.Minute)
	res.Failed, res.Calls = all.Failed, all.OK+all.Failed
	return res
}
