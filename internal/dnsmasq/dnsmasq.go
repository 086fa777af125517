// Package dnsmasq runs a real dnsmasq serving one name from a hosts file,
// as the DNS of a Kubernetes headless Service does (TTL 1 s), for the
// library's DNS-watching tests and the bench scenarios. scripts/test-deps.sh
// installs dnsmasq.
package dnsmasq

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/grpcmgmt/grpcmgmt/internal/extproc"
)

// DNS is one running dnsmasq.
type DNS struct {
	Name string
	// Addr is dnsmasq's host:port; dial dns://ADDR/NAME:PORT.
	Addr string

	hosts string
	proc  *extproc.Process
	log   string
}

// Require returns an error when dnsmasq is not installed, saying how to
// install it.
func Require() error { return extproc.Require("dnsmasq") }

// Start starts dnsmasq on 127.0.0.1:port (0: a free port) serving name
// with ips, keeping its hosts file and log in dir. Close stops it.
func Start(dir, name string, port int, ips ...string) (*DNS, error) {
	if port != 0 {
		return start(dir, name, port, ips...)
	}
	// dnsmasq binds the port on UDP and TCP; another process can take a
	// port between the check and dnsmasq's bind: try a few.
	var err error
	for range 5 {
		if port, err = freeDNSPort("127.0.0.1"); err != nil {
			return nil, err
		}
		var d *DNS
		if d, err = start(dir, name, port, ips...); err == nil {
			return d, nil
		}
	}
	return nil, err
}

func start(dir, name string, port int, ips ...string) (*DNS, error) {
	bin, err := extproc.LookPath("dnsmasq")
	if err != nil {
		return nil, Require()
	}
	d := &DNS{Name: name, Addr: fmt.Sprintf("127.0.0.1:%d", port),
		hosts: filepath.Join(dir, "dns-hosts"), log: filepath.Join(dir, "dnsmasq.log")}
	if err := d.write(ips); err != nil {
		return nil, err
	}
	args := []string{"--no-daemon", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
		"--addn-hosts=" + d.hosts, "--listen-address=127.0.0.1", fmt.Sprintf("--port=%d", port),
		"--bind-interfaces", "--local-ttl=1", "--pid-file=", "--log-facility=-"}
	if os.Geteuid() == 0 {
		// Keep root so the hosts file in a private temp dir stays readable.
		args = append(args, "--user=root")
	}
	proc, err := extproc.Start(bin, args, d.log)
	if err != nil {
		return nil, err
	}
	d.proc = proc
	if err := d.waitAnswer(len(ips)); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// HostsFile is the hosts file dnsmasq serves (for clients that read one
// themselves, as the Java client does through jdk.net.hosts.file).
func (d *DNS) HostsFile() string { return d.hosts }

func (d *DNS) write(ips []string) error {
	var b strings.Builder
	for _, ip := range ips {
		fmt.Fprintf(&b, "%s %s\n", ip, d.Name)
	}
	tmp := d.hosts + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, d.hosts)
}

// Set replaces the replica set (rewrites the hosts file and sends SIGHUP)
// and waits until dnsmasq answers with it.
func (d *DNS) Set(ips ...string) error {
	if err := d.write(ips); err != nil {
		return err
	}
	if err := d.proc.Signal(syscall.SIGHUP); err != nil {
		return err
	}
	return d.waitAnswer(len(ips))
}

// Lookup resolves the name through this dnsmasq.
func (d *DNS) Lookup() ([]string, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.Addr)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return r.LookupHost(ctx, d.Name)
}

func (d *DNS) waitAnswer(n int) error {
	deadline := time.Now().Add(5 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		ips, err := d.Lookup()
		if err == nil && len(ips) == n {
			return nil
		}
		last = fmt.Errorf("got %v, %v", ips, err)
		if n == 0 && err != nil {
			return nil
		}
		select {
		case <-d.proc.Exited():
			return fmt.Errorf("dnsmasq exited: %v (log %s)", d.proc.Err(), d.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("dnsmasq did not answer %d addresses for %s: %v (log %s)", n, d.Name, last, d.log)
}

// Close stops dnsmasq and waits for it to exit; it is idempotent.
func (d *DNS) Close() { d.proc.Kill() }

// FreeUDPPort returns a UDP port free on ip.
func FreeUDPPort(ip string) (int, error) {
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port, nil
}

// freeDNSPort returns a port free on ip for both UDP and TCP (dnsmasq
// serves both).
func freeDNSPort(ip string) (int, error) {
	for range 100 {
		port, err := FreeUDPPort(ip)
		if err != nil {
			return 0, err
		}
		l, err := net.Listen("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("dnsmasq: no port free on %s for both UDP and TCP", ip)
}
