// Package leakcheck fails a test binary whose tests leave goroutines
// running, as go.uber.org/goleak's VerifyTestMain does, without adding a
// module to the library's go.mod: with module graph pruning a test-only
// requirement of ours still shows in every consumer's `go list -m all`
// (issue 14). It follows grpc-go's internal/leakcheck: snapshot every
// goroutine's stack with runtime.Stack, drop the runtime's and the testing
// package's own, and retry until a deadline, since goroutines that a test
// has told to stop may need a moment to return.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Timeout is how long VerifyTestMain waits for the tests' goroutines to
// exit before it reports them: long enough for a connection's reader to see
// its socket close under -race on a loaded two-core machine.
const Timeout = 10 * time.Second

// VerifyTestMain runs the package's tests and, when they pass, waits up to
// Timeout for every goroutine that was not running before the tests started
// to exit. If some are still running it prints their stacks and exits 1;
// otherwise it exits with m.Run's code. Call it from TestMain:
//
//	func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }
func VerifyTestMain(m *testing.M) {
	before := running()
	code := m.Run()
	if code == 0 {
		if leaked := wait(before, Timeout); len(leaked) > 0 {
			fmt.Fprintf(os.Stderr, "leakcheck: %d goroutine(s) still running after the tests:\n\n%s\n",
				len(leaked), strings.Join(leaked, "\n\n"))
			code = 1
		}
	}
	os.Exit(code)
}

// wait returns the stacks of the goroutines running now that are not in
// before and are not the runtime's or the testing package's own, retrying
// with a growing pause until there are none or timeout has passed.
func wait(before map[int]bool, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	pause := time.Millisecond
	for {
		leaked := interesting(before)
		if len(leaked) == 0 || time.Now().After(deadline) {
			return leaked
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// running returns the IDs of every goroutine running now.
func running() map[int]bool {
	ids := map[int]bool{}
	for _, g := range stacks() {
		if id, ok := goroutineID(g); ok {
			ids[id] = true
		}
	}
	return ids
}

// interesting returns the stacks of the goroutines that are neither in
// before, nor the caller, nor known to belong to the runtime or testing.
func interesting(before map[int]bool) []string {
	var out []string
	all := stacks()
	for i, g := range all {
		if i == 0 {
			continue // runtime.Stack lists the calling goroutine first
		}
		if id, ok := goroutineID(g); ok && before[id] {
			continue
		}
		if ignored(g) {
			continue
		}
		out = append(out, g)
	}
	return out
}

// ignoredFuncs are functions whose goroutines the runtime or the testing
// package own (grpc-go's internal/leakcheck list, less what no longer
// exists in the runtime).
var ignoredFuncs = []string{
	"testing.Main(",
	"testing.tRunner(",
	"testing.(*M).",
	"testing.runTests",
	"testing.(*T).Run",
	"created by runtime.gc",
	"created by runtime/trace.Start",
	"runtime.MHeap_Scavenger",
	"signal.signal_recv",
	"os/signal.loop",
	"sigterm.handler",
	"runtime_mcall",
	"runtime.ensureSigM",
	"(*loggingT).flushDaemon",
	"goroutine in C code",
}

func ignored(stack string) bool {
	_, body, _ := strings.Cut(stack, "\n")
	if body == "" {
		return true
	}
	return slices.ContainsFunc(ignoredFuncs, func(f string) bool { return strings.Contains(body, f) })
}

// stacks returns one stack per goroutine, the caller's first.
func stacks() []string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Split(strings.TrimSpace(string(buf[:n])), "\n\n")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// goroutineID parses "goroutine 42 [chan receive]:".
func goroutineID(stack string) (int, bool) {
	rest, ok := strings.CutPrefix(stack, "goroutine ")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, " ")
	if !ok {
		return 0, false
	}
	id, err := strconv.Atoi(num)
	return id, err == nil
}
