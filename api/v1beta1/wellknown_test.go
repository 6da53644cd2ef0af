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

package v1beta1

import (
	"strings"
	"testing"
)

// TestLocalVolumeNameMatchesTarsK8S checks the name against the seed's own PersistentVolume,
// made by TarsK8S's agent on node8.67: existing volumes must be recognised.
func TestLocalVolumeNameMatchesTarsK8S(t *testing.T) {
	got := LocalVolumeName("default", "remote-log-dir", "tars", "tarslog", "node8.67", "t-storage-class")
	if want := "default-remote-log-dir-tars-tarslog-36520b71"; got != want {
		t.Errorf("LocalVolumeName() = %q, want %q", got, want)
	}
	if got := LocalVolumeName("ns", "data", "Tars", "TarsLog", "n", "c"); got[:len("ns-data-tars-tarslog-")] !=
		"ns-data-tars-tarslog-" {
		t.Errorf("app and server are not lower-cased: %q", got)
	}
}

func TestLocalVolumeNamespace(t *testing.T) {
	labels := map[string]string{LabelServerApp: "Tars", LabelServerName: "TarsLog", LabelLocalVolume: "remote-log-dir"}
	for _, tt := range []struct {
		name   string
		labels map[string]string
		want   string // "" when the name is not a local volume's of these labels
	}{
		{LocalVolumeName("team-a", "remote-log-dir", "Tars", "TarsLog", "node-1", StorageClassName), labels, "team-a"},
		// Namespaces may contain what follows them in the name.
		{LocalVolumeName("remote-log-dir-tars", "remote-log-dir", "Tars", "TarsLog", "n", StorageClassName),
			labels, "remote-log-dir-tars"},
		{"default-remote-log-dir-tars-tarslog-c4e31c6", labels, "default"}, // hashes are not zero-padded
		{"remote-log-dir-tars-tarslog-36520b71", labels, ""},               // no namespace
		{"default-data-tars-tarslog-36520b71", labels, ""},                 // another volume
		{"default-remote-log-dir-tars-tarslog", labels, ""},                // no hash
		{"other-name", labels, ""},
		{"default-remote-log-dir-tars-tarslog-36520b71", map[string]string{LabelServerApp: "tars"}, ""},
		{"default-remote-log-dir-tars-tarslog-36520b71", nil, ""},
	} {
		got, ok := LocalVolumeNamespace(tt.name, tt.labels)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("LocalVolumeNamespace(%q, %v) = %q, %v; want %q", tt.name, tt.labels, got, ok, tt.want)
		}
	}
}

func TestSelectedNodeLabelValue(t *testing.T) {
	for node, want := range map[string]string{
		"node-1":                   "node-1",
		"ip-10-0-0-1.ec2.internal": "ip-10-0-0-1.ec2.internal",
		"":                         "",
		strings.Repeat("n", 63):    strings.Repeat("n", 63),
		strings.Repeat("n", 64):    "", // longer than a label value
	} {
		if got := SelectedNodeLabelValue(node); got != want {
			t.Errorf("SelectedNodeLabelValue(%q) = %q, want %q", node, got, want)
		}
	}
}
