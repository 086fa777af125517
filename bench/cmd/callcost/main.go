// Command callcost measures how much CPU a replica spends per call under a
// given load: it starts a replica binary (examples/server or
// bench/cmd/peerserver, with their capacity flags) pinned to one CPU,
// offers it calls in open loop (-rate) or closed loop (-callers) from this
// process over four grpc-go connections, and divides the replica's CPU
// time over the measured window (/proc/PID/stat, user + system) by the
// calls it answered, served and shed alike. Linux only.
//
// It answers questions the scenarios cannot, such as how many CPUs a
// profile needs at 3× its capacity (bench/NOTES.md, "io at 3× needs two
// CPUs for the replica alone"):
//
//	go -C examples build -o /tmp/server ./server
//	go -C bench build -o /tmp/peerserver ./cmd/peerserver
//	go -C bench run ./cmd/callcost -bin /tmp/peerserver -args "-peer none -wait 50ms -workers 500" -rate 4800
//	go -C bench run ./cmd/callcost -bin /tmp/server -args "-shed -shed-max-inflight 5 -wait 50ms -workers 500" -rate 4800
//
// Run it under taskset -c 1 (the replica takes CPU 0 by default) so that
// the load generator does not share the replica's CPU. One run is one
// sample: on a shared machine, repeat and interleave the variants.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/grpcmgmt/grpcmgmt/bench/cluster"
)

func main() {
	bin := flag.String("bin", "", "the replica binary (examples/server or bench/cmd/peerserver, built)")
	args := flag.String("args", "", "its flags (space-separated), besides -listen and -name")
	rate := flag.Float64("rate", 0, "open loop: calls per second")
	callers := flag.Int("callers", 0, "closed loop: concurrent callers (instead of -rate)")
	d := flag.Duration("d", 5*time.Second, "measured window")
	warm := flag.Duration("warmup", time.Second, "load before the window, not counted")
	timeout := flag.Duration("timeout", 250*time.Millisecond, "each call's deadline")
	cpus := flag.String("cpu", "0", "taskset CPU list for the replica (empty: not pinned)")
	flag.Parse()
	if err := run(*bin, strings.Fields(*args), *rate, *callers, *d, *warm, *timeout, *cpus); err != nil {
		log.Fatalf("callcost: %v", err)
	}
}

func run(bin string, args []string, rate float64, callers int, d, warm, timeout time.Duration, cpus string) error {
	if bin == "" {
		return errors.New("-bin is required")
	}
	if (rate > 0) == (callers > 0) {
		return errors.New("give one of -rate (> 0) and -callers (> 0)")
	}
	if d <= 0 || warm < 0 {
		return errors.New("-d must be > 0 and -warmup ≥ 0")
	}
	port, err := cluster.FreePort("127.0.0.2")
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.2", strconv.Itoa(port))
	argv := append([]string{bin, "-listen", addr, "-name", "callcost"}, args...)
	if cpus != "" {
		argv = append([]string{"taskset", "-c", cpus}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := waitListening(addr, 15*time.Second); err != nil {
		return err
	}
	c, err := cluster.Dial(addr, `{"loadBalancingConfig":[{"round_robin":{}}]}`, 4)
	if err != nil {
		return err
	}
	defer c.Close()
	offer := func(span time.Duration, rec *cluster.Recorder) {
		ctx, cancel := context.WithTimeout(context.Background(), span)
		defer cancel()
		if callers > 0 {
			c.ClosedLoop(ctx, callers, timeout, rec)
		} else {
			c.OpenLoop(ctx, rate, timeout, rec)
		}
	}
	offer(warm, cluster.NewRecorder())
	rec := cluster.NewRecorder()
	before, err := cpuSeconds(cmd.Process.Pid)
	if err != nil {
		return err
	}
	offer(d, rec)
	after, err := cpuSeconds(cmd.Process.Pid)
	if err != nil {
		return err
	}
	w := rec.Window(0, 24*time.Hour)
	n := float64(w.OK + w.Failed)
	if n == 0 {
		return errors.New("no call ended in the window")
	}
	fmt.Printf("%s %s: %d served, %d failed %v (%.0f calls/s); replica CPU %.2f s = %.1f µs a call; p99 %v\n",
		bin, strings.Join(args, " "), w.OK, w.Failed, w.Codes, n/d.Seconds(), after-before, (after-before)/n*1e6, w.Quantile(0.99))
	return nil
}

// waitListening waits until addr accepts a connection.
func waitListening(addr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("replica not listening on %s within %v: %w", addr, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cpuSeconds reads a process's user + system CPU time from /proc/PID/stat
// (fields 14 and 15, in clock ticks of 1/100 s).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields after the command", pid, len(f))
	}
	utime, err1 := strconv.ParseFloat(f[11], 64)
	stime, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (utime + stime) / 100, nil
}
