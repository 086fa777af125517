// Package extproc starts the helper programs that end-to-end tests and the
// bench scenarios run next to the library (dnsmasq, HAProxy): it finds
// them, says how to install the missing ones, and makes sure they die with
// the test process.
package extproc

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Require returns an error naming every program in names that is missing,
// with the command that installs them.
func Require(names ...string) error {
	var missing []string
	for _, n := range names {
		if _, err := LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s not installed: run `make test-deps` (scripts/test-deps.sh)", strings.Join(missing, ", "))
	}
	return nil
}

// LookPath finds a program on PATH or in /usr/sbin (where Debian puts
// dnsmasq and haproxy, often not on a user's PATH).
func LookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", name)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s not found", name)
}

// Process is a helper program: its output goes to a log file, it dies with
// the test process (Pdeathsig), and its exit can be awaited any number of
// times.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result; read after exited is closed
	once   sync.Once     // Kill
}

// Start starts bin with args, writing its output to logPath.
func Start(bin string, args []string, logPath string) (*Process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &Process{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() {
		p.err = p.cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is the process's exit error; valid once Exited is closed.
func (p *Process) Err() error {
	<-p.exited
	return p.err
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill stops the process and waits for it; it is idempotent.
func (p *Process) Kill() {
	p.once.Do(func() { _ = p.cmd.Process.Kill() })
	<-p.exited
}
