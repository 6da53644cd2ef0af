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

import "testing"

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
	} {
		if got := namesPath(tt.cmdline, state); got != tt.want {
			t.Errorf("namesPath(%q) = %v, want %v", tt.cmdline, got, tt.want)
		}
	}
}
