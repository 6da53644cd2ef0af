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
	"bytes"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestNamesPath(t *testing.T) {
	const state = "/w/.local/kubeconfig"
	for _, tt := range []struct {
		cmdline string
		want    bool
	}{
		{"bin/manager\x00--kubeconfig=/w/.local/kubeconfig\x00--x", true},
		{"bin/manager\x00--kubeconfig=/w/.local/kubeconfig", true},
		{"etcd\x00--data-dir=/w/.local/kubeconfig/x", true},
		{"bin/manager\x00--kubeconfig=/w/.local/e2e/kubeconfig", false},
		{"bin/manager\x00--kubeconfig=/w/.local/kubeconfig2\x00", false},
		{"vim\x00notes", false},
		// containerd's shims name the socket below the state as a flag's value of its own.
		{"containerd-shim-runc-v2\x00-address\x00/w/.local/kubeconfig/c.sock", true},
		// Another checkout's state, whose path ends with this one's.
		{"bin/manager\x00--kubeconfig=/home/x/w/.local/kubeconfig", false},
		{"tail\x00/old/w/.local/kubeconfig", false},
	} {
		if got := namesPath(tt.cmdline, state); got != tt.want {
			t.Errorf("namesPath(%q) = %v, want %v", tt.cmdline, got, tt.want)
		}
	}
}

// TestSupervise crashes a supervised process: it is started again, with a notice in its log and
// the cluster's notices, until it is stopped; an unsupervised one that exits stays down.
func TestSupervise(t *testing.T) {
	var notices bytes.Buffer
	c := &Cluster{LogDir: t.TempDir(), notices: &syncWriter{w: &notices}}
	p, err := c.StartProcess("sleeper", "/bin/sleep", []string{"600"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Supervise()
	for crash := 1; crash <= 2; crash++ {
		pid := p.Pid()
		if err := p.Crash(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return p.Pid() != pid })
		if p.Restarts() != crash {
			t.Fatalf("after crash %d: %d restarts", crash, p.Restarts())
		}
		if c.Process("sleeper") != p {
			t.Fatalf("after crash %d: the cluster does not find the process running", crash)
		}
	}
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("a stopped process has not exited")
	}
	if c.Process("sleeper") != nil {
		t.Fatal("the cluster still finds a stopped process")
	}
	log, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"restart 1,", "restart 2,", "signal: killed"} {
		if !strings.Contains(string(log), want) || !strings.Contains(notices.String(), want) {
			t.Errorf("log %q and notices %q should both say %q", log, notices.String(), want)
		}
	}
	if !strings.Contains(notices.String(), "restarting it in 2s") {
		t.Errorf("the second restart should wait twice as long: %q", notices.String())
	}

	once, err := c.StartProcess("once", "/bin/true", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-once.Exited()
	if once.Restarts() != 0 || once.Err() != nil {
		t.Fatalf("an unsupervised process that exits: %d restarts, %v", once.Restarts(), once.Err())
	}
}

// TestStopDuringBackOff stops a crashed process while it waits to be started again: it is not.
func TestStopDuringBackOff(t *testing.T) {
	c := &Cluster{LogDir: t.TempDir()}
	p, err := c.StartProcess("sleeper", "/bin/sleep", []string{"600"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.Supervise()
	if err := p.Crash(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return p.Restarts() == 1 })
	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	<-p.Exited()
	time.Sleep(2 * restartDelay)
	if p.Restarts() != 1 {
		t.Fatalf("a process stopped during its back-off was started again (%d restarts)", p.Restarts())
	}
}

func waitFor(t *testing.T, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
