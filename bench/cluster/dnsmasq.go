package cluster

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// DNS is a real dnsmasq serving one name from a hosts file, as the DNS of a
// Kubernetes headless Service does (TTL 1 s).
type DNS struct {
	Name string
	// Addr is dnsmasq's host:port; dial dns://ADDR/NAME:PORT.
	Addr string

	hosts string
	proc  *process
	log   string
}

// StartDNS starts dnsmasq on 127.0.0.1:port (0: a free port) serving name
// with ips.
func (c *Cluster) StartDNS(name string, port int, ips ...string) (*DNS, error) {
	if port != 0 {
		return c.startDNS(name, port, ips...)
	}
	// dnsmasq binds the port on UDP and TCP; another process can take a
	// port between the check and dnsmasq's bind: try a few.
	var err error
	for range 5 {
		if port, err = freeDNSPort("127.0.0.1"); err != nil {
			return nil, err
		}
		var d *DNS
		if d, err = c.startDNS(name, port, ips...); err == nil {
			return d, nil
		}
	}
	return nil, err
}

func (c *Cluster) startDNS(name string, port int, ips ...string) (*DNS, error) {
	bin, err := lookPath("dnsmasq")
	if err != nil {
		return nil, Require("dnsmasq")
	}
	d := &DNS{Name: name, Addr: fmt.Sprintf("127.0.0.1:%d", port),
		hosts: filepath.Join(c.Dir, "dns-hosts"), log: filepath.Join(c.Dir, "dnsmasq.log")}
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
	proc, err := startProcess(bin, args, d.log)
	if err != nil {
		return nil, err
	}
	d.proc = proc
	c.onClose(d.stop)
	if err := d.waitAnswer(len(ips)); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

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
	if err := d.proc.signal(syscall.SIGHUP); err != nil {
		return err
	}
	return d.waitAnswer(len(ips))
}

// Lookup resolves the name through this dnsmasq.
func (d *DNS) Lookup() ([]string, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx contextT, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", d.Addr)
	}}
	ctx, cancel := contextWithTimeout(time.Second)
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
		case <-d.proc.exited:
			return fmt.Errorf("dnsmasq exited: %v (log %s)", d.proc.err, d.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("dnsmasq did not answer %d addresses for %s: %v (log %s)", n, d.Name, last, d.log)
}

func (d *DNS) stop() { d.proc.kill() }

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
	return 0, fmt.Errorf("cluster: no port free on %s for both UDP and TCP", ip)
}
