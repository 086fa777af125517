package cluster

import (
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// process is a helper program (dnsmasq, HAProxy) the cluster started: its
// output goes to a log file, it dies with the test process (Pdeathsig), and
// its exit can be awaited any number of times.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
	err    error         // Wait's result; read after exited is closed
	once   sync.Once     // kill
}

// startProcess starts bin with args, writing its output to logPath.
func startProcess(bin string, args []string, logPath string) (*process, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	p := &process{cmd: exec.Command(bin, args...), exited: make(chan struct{})}
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

// signal sends sig to the process.
func (p *process) signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// kill stops the process and waits for it; it is idempotent.
func (p *process) kill() {
	p.once.Do(func() { _ = p.cmd.Process.Kill() })
	<-p.exited
}
