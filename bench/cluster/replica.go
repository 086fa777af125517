package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Replica is one examples/server process.
type Replica struct {
	Name string
	IP   string
	Port int
	// Args are extra flags for examples/server.
	Args []string

	bin  string
	env  []string
	log  string
	cmd  *exec.Cmd
	done chan error
}

// Addr returns ip:port.
func (r *Replica) Addr() string { return net.JoinHostPort(r.IP, fmt.Sprint(r.Port)) }

// StartReplica starts bin (a build of examples/server) as replica name on
// ip:port and waits until it accepts connections.
func (c *Cluster) StartReplica(bin, name, ip string, port int, args ...string) (*Replica, error) {
	r := &Replica{Name: name, IP: ip, Port: port, Args: args, bin: bin, env: c.ReplicaEnv, log: filepath.Join(c.Dir, name+".log")}
	if err := r.start(); err != nil {
		return nil, err
	}
	c.onClose(r.Kill)
	return r, nil
}

func (r *Replica) start() error {
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"-listen", r.Addr(), "-name", r.Name}, r.Args...)
	r.cmd = exec.Command(r.bin, args...)
	if len(r.env) > 0 {
		r.cmd.Env = append(os.Environ(), r.env...)
	}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	r.done = make(chan error, 1)
	go func() { r.done <- r.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", r.Addr(), 200*time.Millisecond)
		if err == nil {
			conn.Close()
			return nil
		}
		select {
		case err := <-r.done:
			return fmt.Errorf("replica %s exited at start: %v (log %s)", r.Name, err, r.log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	r.Kill()
	return fmt.Errorf("replica %s did not listen on %s within 15s (log %s)", r.Name, r.Addr(), r.log)
}

// Restart starts the replica again after Stop (same address and flags).
func (r *Replica) Restart() error { return r.start() }

// Stop sends SIGTERM (lame-duck shutdown) and waits up to timeout for the
// process to exit; it returns how long that took. After timeout it kills.
func (r *Replica) Stop(timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0, nil
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	select {
	case err := <-r.done:
		r.cmd = nil
		return time.Since(start), err
	case <-ctx.Done():
		r.Kill()
		return time.Since(start), fmt.Errorf("replica %s did not exit within %v", r.Name, timeout)
	}
}

// Kill stops the process at once; it is a no-op if it is not running.
func (r *Replica) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Log returns the path of the replica's log.
func (r *Replica) Log() string { return r.log }

// Signal sends sig to the replica's process (SIGUSR1: its CPU per call
// doubles, or returns; see internal/replica.DriftOnSignal).
func (r *Replica) Signal(sig os.Signal) error {
	if r.cmd == nil || r.cmd.Process == nil {
		return fmt.Errorf("replica %s is not running", r.Name)
	}
	return r.cmd.Process.Signal(sig)
}
