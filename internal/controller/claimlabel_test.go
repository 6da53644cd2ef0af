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

package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSelectedNodeLabel(t *testing.T) {
	long := strings.Repeat("n", 64)
	for _, tt := range []struct {
		name                string
		labels, annotations map[string]string
		volumeName          string
		want                string
		ok                  bool
	}{
		{"not node-local", map[string]string{"tars.io/ServerApp": "tars"},
			map[string]string{"volume.kubernetes.io/selected-node": "node-1"}, "", "", true},
		{"not scheduled", map[string]string{"tars.io/LocalVolume": "data"}, nil, "", "", true},
		{"scheduled, unlabelled", map[string]string{"tars.io/LocalVolume": "data"},
			map[string]string{"volume.kubernetes.io/selected-node": "node-1"}, "", "node-1", false},
		{"scheduled, labelled", map[string]string{"tars.io/LocalVolume": "data", "tars.io/SelectedNode": "node-1"},
			map[string]string{"volume.kubernetes.io/selected-node": "node-1"}, "", "node-1", true},
		{"rescheduled elsewhere", map[string]string{"tars.io/LocalVolume": "data", "tars.io/SelectedNode": "node-1"},
			map[string]string{"volume.kubernetes.io/selected-node": "node-2"}, "", "node-2", false},
		{"handed back to the scheduler", map[string]string{"tars.io/LocalVolume": "data", "tars.io/SelectedNode": "node-1"},
			nil, "", "", false},
		{"a node name that is no label value", map[string]string{"tars.io/LocalVolume": "data"},
			map[string]string{"volume.kubernetes.io/selected-node": long}, "", "", true},
		{"an empty label", map[string]string{"tars.io/LocalVolume": "data", "tars.io/SelectedNode": ""}, nil, "", "", false},
		{"bound without the scheduler, labelled by its volume's agent",
			map[string]string{"tars.io/LocalVolume": "data", "tars.io/SelectedNode": "node-1"}, nil, "pv", "node-1", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels, Annotations: tt.annotations}}
			pvc.Spec.VolumeName = tt.volumeName
			if want, ok := selectedNodeLabel(pvc); want != tt.want || ok != tt.ok {
				t.Errorf("selectedNodeLabel() = %q, %v; want %q, %v", want, ok, tt.want, tt.ok)
			}
		})
	}
}
