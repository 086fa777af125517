package cluster

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/grpcmgmt/grpcmgmt/internal/extproc"
)

// HAProxy is a real HAProxy in TCP mode (round-robin per connection unless
// HAProxyOptions.Balance says otherwise), the
// stand-in for kube-proxy or a TCP network load balancer. Every replica
// that may ever join is declared up front; Enable and Disable change the
// set at run time through HAProxy's admin socket, as an operator or an
// autoscaler would.
type HAProxy struct {
	// Addr is the frontend's host:port.
	Addr string

	sock string
	proc *extproc.Process
	log  string
}

// HAProxyOptions are the settings of an HAProxy that the scenarios vary.
type HAProxyOptions struct {
	// Balance is the backend's algorithm: "roundrobin" (the default),
	// "random(1)" (uniform: kube-proxy in iptables mode), "random" (two
	// draws, the least loaded: HAProxy's default for random), "leastconn"
	// (IPVS lc).
	Balance string
	// MaxConn is the most connections HAProxy accepts. Default 4000.
	MaxConn int
}

// StartHAProxy starts HAProxy on 127.0.0.1:port balancing round-robin over
// backends (name → host:port); only the names in enabled start in
// rotation.
func (c *Cluster) StartHAProxy(port int, backends []*Replica, enabled ...string) (*HAProxy, error) {
	return c.StartHAProxyWith(port, HAProxyOptions{}, backends, enabled...)
}

// StartHAProxyWith is StartHAProxy with options.
func (c *Cluster) StartHAProxyWith(port int, o HAProxyOptions, backends []*Replica, enabled ...string) (*HAProxy, error) {
	if o.Balance == "" {
		o.Balance = "roundrobin"
	}
	if o.MaxConn == 0 {
		o.MaxConn = 4000
	}
	bin, err := lookPath("haproxy")
	if err != nil {
		return nil, Require("haproxy")
	}
	if port == 0 {
		if port, err = FreePort("127.0.0.1"); err != nil {
			return nil, err
		}
	}
	h := &HAProxy{Addr: fmt.Sprintf("127.0.0.1:%d", port),
		sock: filepath.Join(c.Dir, "haproxy.sock"), log: filepath.Join(c.Dir, "haproxy.log")}
	on := map[string]bool{}
	for _, n := range enabled {
		on[n] = true
	}
	var b strings.Builder
	fmt.Fprintf(&b, `global
    stats socket %s mode 600 level admin
    maxconn %d
defaults
    mode tcp
    maxconn %d
    timeout connect 2s
    timeout client 5m
    timeout server 5m
frontend grpc
    bind %s
    default_backend replicas
backend replicas
    balance %s
`, h.sock, o.MaxConn, o.MaxConn, h.Addr, o.Balance)
	for _, r := range backends {
		state := ""
		if !on[r.Name] {
			state = " disabled"
		}
		fmt.Fprintf(&b, "    server %s %s%s\n", r.Name, r.Addr(), state)
	}
	cfg := filepath.Join(c.Dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	proc, err := extproc.Start(bin, []string{"-f", cfg, "-db"}, h.log)
	if err != nil {
		return nil, err
	}
	h.proc = proc
	c.onClose(h.stop)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", h.Addr, 200*time.Millisecond); err == nil {
			conn.Close()
			if _, err := h.command("show info"); err == nil {
				return h, nil
			}
		}
		select {
		case <-h.proc.Exited():
			return nil, fmt.Errorf("haproxy exited: %v (log %s)", h.proc.Err(), h.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("haproxy did not start on %s (log %s)", h.Addr, h.log)
}

// Enable puts a declared replica into rotation.
func (h *HAProxy) Enable(name string) error {
	out, err := h.command("enable server replicas/" + name)
	if err == nil && strings.TrimSpace(out) != "" {
		err = fmt.Errorf("haproxy: enable %s: %s", name, out)
	}
	return err
}

// Disable takes a replica out of rotation for new connections.
func (h *HAProxy) Disable(name string) error {
	out, err := h.command("disable server replicas/" + name)
	if err == nil && strings.TrimSpace(out) != "" {
		err = fmt.Errorf("haproxy: disable %s: %s", name, out)
	}
	return err
}

// ServerStat is one backend server's counters in HAProxy's statistics.
type ServerStat struct {
	// Current is the connections open to the server now (scur); Total the
	// connections it was ever given (stot).
	Current, Total int
}

// Stats returns each backend server's counters, by name.
func (h *HAProxy) Stats() (map[string]ServerStat, error) {
	out, err := h.command("show stat")
	if err != nil {
		return nil, err
	}
	lines := strings.Split(out, "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "# ") {
		return nil, fmt.Errorf("haproxy: show stat: unexpected output %q", out)
	}
	col := map[string]int{}
	for i, name := range strings.Split(strings.TrimPrefix(lines[0], "# "), ",") {
		col[name] = i
	}
	stats := map[string]ServerStat{}
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) <= col["stot"] || f[col["pxname"]] != "replicas" || f[col["svname"]] == "BACKEND" {
			continue
		}
		cur, err1 := strconv.Atoi(f[col["scur"]])
		tot, err2 := strconv.Atoi(f[col["stot"]])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("haproxy: show stat: bad line %q", l)
		}
		stats[f[col["svname"]]] = ServerStat{Current: cur, Total: tot}
	}
	return stats, nil
}

func (h *HAProxy) command(cmd string) (string, error) {
	conn, err := net.DialTimeout("unix", h.sock, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n", cmd); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String(), sc.Err()
}

func (h *HAProxy) stop() { h.proc.Kill() }
