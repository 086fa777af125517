// Package h2spectest runs the h2spec HTTP/2 conformance suite
// (github.com/summerwind/h2spec, pinned below) against a grpc-go server
// with and without the GOAWAY credentials wrapper, and checks that the
// same cases pass. It is a package of its own so that its half minute of
// h2spec time runs in parallel with the other packages' tests.
package h2spectest

import (
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/grpcmgmt/grpcmgmt/internal/leakcheck"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/grpcmgmt/grpcmgmt/goaway"
	"github.com/grpcmgmt/grpcmgmt/internal/replica"
)

// h2specVersion pins the suite. (The module has no go.mod at this tag, so
// the proxy knows it as +incompatible; it reports itself as 2.0.0.)
const h2specVersion = "v2.2.1+incompatible"

// reruns is how often a case whose outcome differs is run again on both
// servers. A case that flips with probability p on each run looks like a
// difference with probability 2·p^6·(1-p)^6 ≤ 5e-4.
const reruns = 5

func TestMain(m *testing.M) { leakcheck.VerifyTestMain(m) }

// h2specBinary installs h2spec once per machine into the user cache.
func h2specBinary(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "grpcmgmt", "h2spec-"+h2specVersion)
	bin := filepath.Join(dir, "h2spec")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to install h2spec: %v", err)
	}
	cmd := exec.Command(goCmd, "install", "github.com/summerwind/h2spec/cmd/h2spec@"+h2specVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installing h2spec %s (needs the Go module proxy; run make test-deps): %v\n%s", h2specVersion, err, out)
	}
	return bin
}

func serve(t *testing.T, creds credentials.TransportCredentials) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds))
	replica.New(replica.Config{Name: "h2spec"}).Register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return lis.Addr().(*net.TCPAddr).Port
}

// outcome of one h2spec case: "pass", "failure", "error" or "skipped".
type results map[string]string

// run runs h2spec (all cases, or the given ones) against port. It is
// called on several goroutines at once, so it reports trouble as an error.
func run(dir, bin string, port int, cases ...string) (results, error) {
	f, err := os.CreateTemp(dir, "report-*.xml")
	if err != nil {
		return nil, err
	}
	_ = f.Close()
	report := f.Name()
	_ = os.Remove(report)
	args := append(cases, "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-o", "1",
		"-P", "/grpc.testing.TestService/EmptyCall", "-j", report)
	out, err := exec.Command(bin, args...).CombinedOutput()
	b, rerr := os.ReadFile(report)
	if rerr != nil {
		return nil, fmt.Errorf("h2spec wrote no report: %v\n%s", err, out)
	}
	var doc struct {
		Suites []struct {
			Package string `xml:"package,attr"`
			Cases   []struct {
				Name    string    `xml:"classname,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	r := results{}
	for _, s := range doc.Suites {
		for i, c := range s.Cases {
			id := fmt.Sprintf("%s/%d", s.Package, i+1)
			if len(cases) == 1 {
				id = cases[0]
			}
			switch {
			case c.Failure != nil:
				r[id] = "failure"
			case c.Error != nil:
				r[id] = "error"
			case c.Skipped != nil:
				r[id] = "skipped"
			default:
				r[id] = "pass"
			}
		}
	}
	return r, nil
}

// both runs h2spec against the two servers at once.
func both(t *testing.T, bin string, ports [2]int, cases ...string) [2]results {
	t.Helper()
	var out [2]results
	var errs [2]error
	var wg sync.WaitGroup
	for i := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = run(t.TempDir(), bin, ports[i], cases...)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func (r results) count(outcome string) int {
	n := 0
	for _, o := range r {
		if o == outcome {
			n++
		}
	}
	return n
}

// TestH2SpecSameWithWrapper: the GOAWAY wrapper changes nothing h2spec can
// see. A few h2spec cases race against grpc-go's own response to the
// request they send and flip between runs on the bare server too; a case
// that differs is run again (reruns times) on both servers, and only a
// case that passes every time on one server and never on the other counts
// as a difference.
func TestH2SpecSameWithWrapper(t *testing.T) {
	bin := h2specBinary(t)
	tr, err := goaway.NewTracker(goaway.Config{})
	if err != nil {
		t.Fatal(err)
	}
	barePort := serve(t, insecure.NewCredentials())
	wrapPort := serve(t, tr.WrapCredentials(insecure.NewCredentials()))

	ports := [2]int{barePort, wrapPort}
	first := both(t, bin, ports)
	bare, wrapped := first[0], first[1]
	t.Logf("h2spec %s, bare grpc-go:   %d cases, %d passed, %d failed, %d skipped",
		h2specVersion, len(bare), bare.count("pass"), bare.count("failure")+bare.count("error"), bare.count("skipped"))
	t.Logf("h2spec %s, with wrapper:   %d cases, %d passed, %d failed, %d skipped",
		h2specVersion, len(wrapped), wrapped.count("pass"), wrapped.count("failure")+wrapped.count("error"), wrapped.count("skipped"))
	if len(bare) < 140 || len(bare) != len(wrapped) || bare.count("pass") < 100 {
		t.Fatalf("h2spec did not run fully: %d and %d cases", len(bare), len(wrapped))
	}
	var differing, flaky []string
	for id, o := range bare {
		if wrapped[id] == o {
			continue
		}
		passes := [2]int{}
		if o == "pass" {
			passes[0]++
		}
		if wrapped[id] == "pass" {
			passes[1]++
		}
		for range reruns {
			again := both(t, bin, ports, id)
			for i := range again {
				if again[i][id] == "pass" {
					passes[i]++
				}
			}
		}
		if (passes[0] == reruns+1 && passes[1] == 0) || (passes[0] == 0 && passes[1] == reruns+1) {
			differing = append(differing, fmt.Sprintf("%s: bare passed %d/%d, wrapped %d/%d", id, passes[0], reruns+1, passes[1], reruns+1))
		} else {
			flaky = append(flaky, fmt.Sprintf("%s (bare %d/%d, wrapped %d/%d)", id, passes[0], reruns+1, passes[1], reruns+1))
		}
	}
	if len(flaky) > 0 {
		t.Logf("cases that flip between runs on either server: %s", strings.Join(flaky, ", "))
	}
	if len(differing) > 0 {
		t.Fatalf("the wrapper changes h2spec outcomes:\n%s", strings.Join(differing, "\n"))
	}
}
