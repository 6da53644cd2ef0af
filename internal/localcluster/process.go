/*
Copyright 2026.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package localcluster

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// stopTimeout is how long a process gets to exit after SIGTERM before it is killed.
const stopTimeout = 10 * time.Second

// The back-off between restarts of a supervised process that exits by itself, as the kubelet's
// for a crashing container (10 s doubling to 5 min), shortened for a local cluster: the first
// restart after restartDelay, each further one after twice the last, at most maxRestartDelay;
// a run that lasted restartResetAfter starts the back-off over.
const (
	restartDelay      = time.Second
	maxRestartDelay   = 30 * time.Second
	restartResetAfter = time.Minute
)

// Process is a program the cluster started beside its control plane (the manager, agents,
// kube-controller-manager, simulated nodes). Its output goes to a log file under the cluster's
// LogDir. Once supervised, it is started again whenever it exits without being asked to, as the
// kubelet restarts the container of a DaemonSet or Deployment pod.
type Process struct {
	// Name identifies the process in logs and messages.
	Name string
	// LogPath is the file its output goes to.
	LogPath string
	// PprofAddr is where the operator's roles serve Go's pprof endpoints (host:port).
	PprofAddr string
	// MetricsAddr is where an agent serves its metrics (host:port, plain HTTP); "" for others.
	MetricsAddr string

	c          *Cluster
	path       string
	args, env  []string
	echo       io.Writer
	supervised atomic.Bool
	stopped    atomic.Bool
	running    atomic.Bool
	// stop is closed when the process is asked to exit (Stop, kill); exited when it has exited
	// for good, err then saying how.
	stop     chan struct{}
	stopOnce sync.Once
	exited   chan struct{}
	err      error

	// mu guards cmd (the current run) and restarts.
	mu       sync.Mutex
	cmd      *exec.Cmd
	restarts int
}

// StartProcess starts path with args and extra environment variables, its output going to
// LogDir/<name>.log (appended to, when a process of that name ran before) and, when echo is not
// nil, to echo as well. Cluster.Stop stops it.
func (c *Cluster) StartProcess(name, path string, args, env []string, echo io.Writer) (*Process, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil, fmt.Errorf("starting %s: the cluster is stopped", name)
	}
	p := &Process{Name: name, LogPath: c.logPath(name), c: c, path: path, args: args, env: env, echo: echo,
		stop: make(chan struct{}), exited: make(chan struct{})}
	cmd, log, err := p.launch()
	if err != nil {
		return nil, err
	}
	go p.supervise(cmd, log)
	c.processes = append(c.processes, p)
	return p, nil
}

// launch starts a run of the process, unless it was asked to stop.
func (p *Process) launch() (*exec.Cmd, *os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped.Load() {
		return nil, nil, fmt.Errorf("starting %s: it was stopped", p.Name)
	}
	log, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, err
	}
	var out io.Writer = log
	if p.echo != nil {
		out = io.MultiWriter(log, p.echo)
	}
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", p.Name, err)
	}
	p.cmd = cmd
	p.running.Store(true)
	return cmd, log, nil
}

// supervise waits for each run of the process to exit and, while the process is supervised and
// not asked to stop, starts the next after the back-off, saying so in its log and the cluster's
// Notices.
func (p *Process) supervise(cmd *exec.Cmd, log *os.File) {
	delay := restartDelay
	for {
		began := time.Now()
		err := cmd.Wait()
		p.running.Store(false)
		ran := time.Since(began)
		if p.stopped.Load() || !p.supervised.Load() {
			_ = log.Close()
			p.exit(err)
			return
		}
		if ran >= restartResetAfter {
			delay = restartDelay
		}
		p.mu.Lock()
		p.restarts++
		n := p.restarts
		p.mu.Unlock()
		notice := fmt.Sprintf("%s exited (%v) after %s; restarting it in %s (restart %d, log %s)",
			p.Name, exitStatus(err), ran.Round(100*time.Millisecond), delay, n, p.LogPath)
		_, _ = fmt.Fprintf(log, "localcluster: %s\n", notice)
		_ = log.Close()
		p.c.notify(notice)
		select {
		case <-p.stop:
			p.exit(err)
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, maxRestartDelay)
		var launchErr error
		if cmd, log, launchErr = p.launch(); launchErr != nil {
			p.c.notify(launchErr.Error())
			p.exit(errors.Join(err, launchErr))
			return
		}
	}
}

// exitStatus says how a run ended, for a notice.
func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// exit records how the process ended for good.
func (p *Process) exit(err error) {
	p.err = err
	close(p.exited)
}

// Supervise has the process started again, after a back-off, whenever it exits without being
// asked to (Stop, a node powered off). Started processes are not supervised until they are ready,
// so that one that cannot start fails its start instead of restarting for ever.
func (p *Process) Supervise() { p.supervised.Store(true) }

// Pid is the id of the process's current run.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// Restarts is how many times the process was started again after exiting by itself.
func (p *Process) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Running says whether a run of the process is under way (not exited, nor waiting to restart).
func (p *Process) Running() bool { return p.running.Load() }

// Exited is closed when the process has exited for good: asked to, or not supervised.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited; valid once Exited is closed.
func (p *Process) Err() error { return p.err }

// Stopped says whether the process was asked to exit (Stop, or a node powered off), rather than
// exiting by itself.
func (p *Process) Stopped() bool { return p.stopped.Load() }

// Crash kills the current run outright (SIGKILL), as a crash or the out-of-memory killer would;
// a supervised process is started again after its back-off. It does not wait. A process not
// running at the moment (waiting to be started again) is left alone: the error is then
// os.ErrProcessDone.
func (p *Process) Crash() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("killing %s: %w", p.Name, err)
	}
	return nil
}

// markStopped records that the process is asked to exit: it is not started again.
func (p *Process) markStopped() {
	p.stopped.Store(true)
	p.stopOnce.Do(func() { close(p.stop) })
}

// Stop asks the process to exit (SIGTERM), kills it if it has not after stopTimeout, and waits.
func (p *Process) Stop() error {
	p.markStopped()
	select {
	case <-p.exited:
		return nil
	default:
	}
	p.mu.Lock()
	proc := p.cmd.Process
	p.mu.Unlock()
	if err := proc.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping %s: %w", p.Name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = proc.Kill()
		<-p.exited
	}
	return nil
}

// kill kills the process outright (SIGKILL), as a power cut would, and waits for it.
func (p *Process) kill() {
	p.markStopped()
	p.mu.Lock()
	proc := p.cmd.Process
	p.mu.Unlock()
	_ = proc.Kill()
	<-p.exited
}
