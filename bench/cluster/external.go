package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// Stack is a gRPC client implementation other than the in-process grpc-go
// one, run as a process from the module's test/ tree. Each prints the same
// JSON (see test/python/load_client.py), which StartExternal turns into a
// Recorder, so every scenario measures every stack the same way.
type Stack string

// The client stacks scenarios and tests can run. GoStack ("") is the
// in-process grpc-go client of loadgen.go.
const (
	GoStack     Stack = ""
	JavaStack   Stack = "java"   // grpc-java 1.41 with Netty (Debian libgrpc-java), test/java/LoadClient.java
	PythonStack Stack = "python" // C-core 1.51 (Debian python3-grpcio), test/python/load_client.py
)

// Name returns the stack's figure name ("go", "java", "python").
func (s Stack) Name() string {
	if s == GoStack {
		return "go"
	}
	return string(s)
}

// systemPython is Debian's python3, where python3-grpcio is installed (a
// pyenv or venv python3 earlier on PATH does not have it).
const systemPython = "/usr/bin/python3"

// javaJars are the Debian jars (in /usr/share/java) a grpc-java 1.41 client
// with Netty needs.
var javaJars = []string{
	"grpc-api", "grpc-core", "grpc-context", "grpc-netty", "perfmark-api", "guava", "gson",
	"error_prone_annotations", "netty-buffer", "netty-codec", "netty-codec-http", "netty-codec-http2",
	"netty-codec-socks", "netty-common", "netty-handler", "netty-handler-proxy", "netty-resolver",
	"netty-transport",
}

// RequireStack returns an error naming what stack s needs that is missing,
// with the command that installs it.
func RequireStack(s Stack) error {
	var missing []string
	switch s {
	case JavaStack:
		for _, tool := range []string{"java", "javac"} {
			if _, err := exec.LookPath(tool); err != nil {
				missing = append(missing, tool)
			}
		}
		for _, j := range javaJars {
			if _, err := os.Stat(filepath.Join("/usr/share/java", j+".jar")); err != nil {
				missing = append(missing, j+".jar")
			}
		}
	case PythonStack:
		if err := exec.Command(systemPython, "-c", "import grpc").Run(); err != nil {
			missing = append(missing, "python3-grpcio (for "+systemPython+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("cluster: %s client: %s not installed: run `make test-deps` (scripts/test-deps.sh)", s.Name(), strings.Join(missing, ", "))
	}
	return nil
}

// ExternalLoad is one run of an external client: Callers closed-loop
// callers over Channels channels to Target with ServiceConfig, each call
// with CallTimeout, for For (0: until Stop).
type ExternalLoad struct {
	Stack         Stack
	Target        string
	ServiceConfig string
	Channels      int
	Callers       int
	CallTimeout   time.Duration
	For           time.Duration
	// Rate, when positive, makes the Python client open loop: Rate calls
	// per second on a fixed schedule, whatever the replies (Callers is then
	// ignored). The Java client is closed loop only.
	Rate float64
	// MinResolution is the client's DNS re-resolution floor: C-core's
	// grpc.dns_min_time_between_resolutions_ms, Java's
	// networkaddress.cache.ttl; 0 keeps their default (30 s).
	MinResolution time.Duration
	// HostsFile, for Java, makes the JDK resolve names from this hosts file
	// (jdk.net.hosts.file) instead of the system's DNS: grpc-java resolves
	// through the JDK, which cannot be pointed at a DNS server on another
	// port than 53, so the harness gives it the file its dnsmasq serves
	// (DNS.HostsFile), the same replica set.
	HostsFile string
}

// ExternalRun is an external client running.
type ExternalRun struct {
	cmd       *exec.Cmd
	stdin     io.WriteCloser
	out, errb bytes.Buffer
	stopOnce  sync.Once
}

// ExternalResult is what an external client reported.
type ExternalResult struct {
	Calls, Failed int
	Errors        []string
	ByStatus      map[string]int
	// Rec holds every call, on the clock of the Recorder passed to Wait.
	Rec *Recorder
}

// StartExternal starts the client of l.Stack (compiling the Java one into
// c.Dir on first use).
func (c *Cluster) StartExternal(ctx context.Context, l ExternalLoad) (*ExternalRun, error) {
	if err := RequireStack(l.Stack); err != nil {
		return nil, err
	}
	if l.Rate > 0 && l.Stack != PythonStack {
		return nil, fmt.Errorf("cluster: StartExternal: open loop (Rate) is for the Python client only, not %s", l.Stack.Name())
	}
	opts, err := json.Marshal(map[string]any{
		"target": l.Target, "serviceConfig": l.ServiceConfig, "channels": max(1, l.Channels),
		"callers": max(1, l.Callers), "durationMs": l.For.Milliseconds(),
		"deadlineMs": max(1, l.CallTimeout.Milliseconds()), "minResolutionMs": resolutionMs(l.MinResolution),
		"rate": l.Rate,
	})
	if err != nil {
		return nil, err
	}
	var cmd *exec.Cmd
	switch l.Stack {
	case JavaStack:
		cp, err := c.javaClasspath()
		if err != nil {
			return nil, err
		}
		args := []string{"-cp", cp, fmt.Sprintf("-Dnetworkaddress.cache.ttl=%d", resolutionMs(l.MinResolution)/1000)}
		if l.HostsFile != "" {
			args = append(args, "-Djdk.net.hosts.file="+l.HostsFile, "-Dsun.net.inetaddr.ttl=1")
		}
		cmd = exec.CommandContext(ctx, "java", append(args, "LoadClient", string(opts))...)
	case PythonStack:
		cmd = exec.CommandContext(ctx, systemPython, filepath.Join(c.Root, "test", "python", "load_client.py"), string(opts))
	default:
		return nil, fmt.Errorf("cluster: StartExternal: unknown stack %q", l.Stack)
	}
	r := &ExternalRun{cmd: cmd}
	cmd.Stdout, cmd.Stderr = &r.out, &r.errb
	if r.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return r, nil
}

func resolutionMs(d time.Duration) int64 {
	if d <= 0 {
		return 30000
	}
	return d.Milliseconds()
}

// Stop asks a client started with For 0 to finish its calls and report.
func (r *ExternalRun) Stop() { r.stopOnce.Do(func() { _ = r.stdin.Close() }) }

// Wait waits for the client to end and returns its report, its calls
// recorded on rec's clock (from the client's wall-clock start).
func (r *ExternalRun) Wait(rec *Recorder) (ExternalResult, error) {
	if err := r.cmd.Wait(); err != nil {
		return ExternalResult{}, fmt.Errorf("%s: %v: %s", r.cmd.Path, err, tail(r.errb.String()))
	}
	var out struct {
		Calls, Failed int
		Errors        []string
		ByStatus      map[string]int
		StartUnixMs   int64
		Records       [][4]json.RawMessage
	}
	if err := json.Unmarshal(r.out.Bytes(), &out); err != nil {
		return ExternalResult{}, fmt.Errorf("%s output %q: %v (stderr %s)", r.cmd.Path, tail(r.out.String()), err, tail(r.errb.String()))
	}
	offset := time.UnixMilli(out.StartUnixMs).Sub(rec.Start())
	for _, f := range out.Records {
		var atMs, code, latUs int64
		var replica string
		if err := errors.Join(json.Unmarshal(f[0], &atMs), json.Unmarshal(f[1], &replica),
			json.Unmarshal(f[2], &code), json.Unmarshal(f[3], &latUs)); err != nil {
			return ExternalResult{}, fmt.Errorf("%s: record %s: %v", r.cmd.Path, f, err)
		}
		rec.RecordAt(offset+time.Duration(atMs)*time.Millisecond, replica, time.Duration(latUs)*time.Microsecond, codes.Code(code))
	}
	return ExternalResult{Calls: out.Calls, Failed: out.Failed, Errors: out.Errors, ByStatus: out.ByStatus, Rec: rec}, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return "…" + s[len(s)-2000:]
	}
	return s
}

// javaClasspath compiles test/java/LoadClient.java into c.Dir once and
// returns the class path to run it.
func (c *Cluster) javaClasspath() (string, error) {
	c.javaOnce.Do(func() {
		var jars []string
		for _, j := range javaJars {
			jars = append(jars, filepath.Join("/usr/share/java", j+".jar"))
		}
		out := filepath.Join(c.Dir, "java")
		cmd := exec.Command("javac", "-nowarn", "-d", out, "-cp", strings.Join(jars, ":"),
			filepath.Join(c.Root, "test", "java", "LoadClient.java"))
		if b, err := cmd.CombinedOutput(); err != nil {
			c.javaErr = fmt.Errorf("javac LoadClient.java: %v\n%s", err, b)
			return
		}
		c.javaCP = strings.Join(append([]string{out}, jars...), ":")
	})
	return c.javaCP, c.javaErr
}

// startLoad starts closed-loop load from l's client (l.For is ignored),
// recording into rec until the returned stop is called; stop waits for the
// calls under way and returns the client's error, if any.
func (c *Cluster) startLoad(ctx context.Context, l ExternalLoad, rec *Recorder) (stop func() error, err error) {
	if l.Stack != GoStack {
		l.For = 0
		run, err := c.StartExternal(ctx, l)
		if err != nil {
			return nil, err
		}
		return func() error {
			run.Stop()
			_, err := run.Wait(rec)
			return err
		}, nil
	}
	client, err := Dial(l.Target, l.ServiceConfig, l.Channels)
	if err != nil {
		return nil, err
	}
	loadCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); client.ClosedLoop(loadCtx, l.Callers, l.CallTimeout, rec) }()
	return func() error {
		cancel()
		<-done
		client.Close()
		return nil
	}, nil
}

// dnsLoad is the load of stack's client on dns's name: for grpc-go and
// C-core through dnsmasq itself (dns://ADDR/NAME:PORT), for Java through
// the hosts file dnsmasq serves (see ExternalLoad.HostsFile).
func dnsLoad(stack Stack, dns *DNS, port int) ExternalLoad {
	if stack == JavaStack {
		return ExternalLoad{Stack: stack, Target: fmt.Sprintf("dns:///%s:%d", dns.Name, port), HostsFile: dns.HostsFile()}
	}
	return ExternalLoad{Stack: stack, Target: fmt.Sprintf("dns://%s/%s:%d", dns.Addr, dns.Name, port)}
}
