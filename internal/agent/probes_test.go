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

package agent

import (
	"net"
	"net/http"
	"testing"
)

// TestServeWaitingProbes: while the agent waits for the API server, it is alive but not ready, and
// once stopped, the address is free for the manager's probes.
func TestServeWaitingProbes(t *testing.T) {
	addr, stop, err := ServeWaitingProbes("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/readyz": http.StatusServiceUnavailable} {
		resp, err := http.Get("http://" + addr + path) //nolint:noctx // a test
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	stop()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("after stop, %s is not free: %v", addr, err)
	}
	_ = l.Close()
	if _, stop, err := ServeWaitingProbes("0"); err != nil {
		t.Fatal(err)
	} else {
		stop()
	}
}
