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
	"sync/atomic"
	"syscall"
	"time"
)

// stopTimeout is how long a process gets to exit after SIGTERM before it is killed.
const stopTimeout = 10 * time.Second

// Process is a program the cluster started beside its control plane (the manager, agents,
// simulated nodes). Its output goes to a log file under the cluster's LogDir.
type Process struct {
	// Name identifies the process in logs and messages.
	Name string
	// LogPath is the file its output goes to.
	LogPath string
	// PprofAddr is where the operator's roles serve Go's pprof endpoints (host:port).
	PprofAddr string

	cmd     *exec.Cmd
	exited  chan struct{}
	err     error
	stopped atomic.Bool
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
	log, err := c.logFile(name)
	if err != nil {
		return nil, err
	}
	var out io.Writer = log
	if echo != nil {
		out = io.MultiWriter(log, echo)
	}
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: log.Name(), cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		_ = log.Close()
		close(p.exited)
	}()
	c.processes = append(c.processes, p)
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Err is how the process exited; valid once Exited is closed.
func (p *Process) Err() error { return p.err }

// Stopped says whether the process was asked to exit (Stop, or a node powered off), rather than
// exiting by itself.
func (p *Process) Stopped() bool { return p.stopped.Load() }

// Stop asks the process to exit (SIGTERM), kills it if it has not after stopTimeout, and waits.
func (p *Process) Stop() error {
	p.stopped.Store(true)
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stopping %s: %w", p.Name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
	return nil
}

// kill kills the process outright (SIGKILL), as a power cut would, and waits for it.
func (p *Process) kill() {
	p.stopped.Store(true)
	_ = p.cmd.Process.Kill()
	<-p.exited
}
