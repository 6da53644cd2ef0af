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
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kwok/pkg/apis/internalversion"
	"sigs.k8s.io/kwok/pkg/apis/v1alpha1"
	"sigs.k8s.io/kwok/pkg/utils/lifecycle"
	"sigs.k8s.io/yaml"
)

// TestKwokStages matches nodes and pods against the stages the cluster gives kwok, with kwok's
// own matching: a node powered off gets neither heartbeat nor initialisation, others do; the
// running pods of a node back from NotReady become Ready again, a pod deleted gracefully is deleted,
// one deleted with no grace period is left to the API server, and nothing else changes for pods.
func TestKwokStages(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Skip("KUBEBUILDER_ASSETS is unset; kwok's stages come with its binary (make kube-binaries)")
	}
	files, err := writeKwokStages(assets, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// kwok plays the stages of each kind of object apart.
	stages := map[string][]*internalversion.Stage{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		stage := &v1alpha1.Stage{}
		if err := yaml.UnmarshalStrict(data, stage); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		internal, err := internalversion.ConvertToInternalStage(stage)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		kind := internal.Spec.ResourceRef.Kind
		stages[kind] = append(stages[kind], internal)
	}

	node := func(power string, ready corev1.ConditionStatus) *corev1.Node {
		n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{"type": "kwok"}}}
		if power != "" {
			n.Labels[PowerLabel] = power
		}
		n.Status.Phase = corev1.NodeRunning
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}
		return n
	}
	// grace is the pod's deletion grace period, or -1 for a pod not being deleted.
	pod := func(phase corev1.PodPhase, ready corev1.ConditionStatus, grace int64) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default"}}
		p.Spec.NodeName = "node-1"
		p.Status.Phase = phase
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
		if grace >= 0 {
			now := metav1.Now()
			p.DeletionTimestamp, p.DeletionGracePeriodSeconds = &now, &grace
		}
		return p
	}
	for _, tt := range []struct {
		name string
		obj  metav1.Object
		want string
	}{
		{"node Ready", node("", corev1.ConditionTrue), "node-heartbeat"},
		{"node Ready, power on", node("on", corev1.ConditionTrue), "node-heartbeat"},
		{"node NotReady", node("", corev1.ConditionUnknown), "node-initialize"},
		{"node Ready, powered off", node(PoweredOff, corev1.ConditionTrue), ""},
		{"node NotReady, powered off", node(PoweredOff, corev1.ConditionUnknown), ""},
		{"pod Pending", pod(corev1.PodPending, corev1.ConditionFalse, -1), "pod-ready"},
		{"pod Running and Ready", pod(corev1.PodRunning, corev1.ConditionTrue, -1), ""},
		{"pod Running, not Ready", pod(corev1.PodRunning, corev1.ConditionFalse, -1), "pod-ready-again"},
		{"pod Running, not Ready, deleted", pod(corev1.PodRunning, corev1.ConditionFalse, 30), "pod-delete"},
		{"pod Running and Ready, deleted", pod(corev1.PodRunning, corev1.ConditionTrue, 1), "pod-delete"},
		// The API server deletes it right after marking it: kwok's delete by name would hit the
		// pod that replaces it.
		{"pod Running, deleted with no grace period", pod(corev1.PodRunning, corev1.ConditionTrue, 0), ""},
		{"pod Pending, deleted with no grace period", pod(corev1.PodPending, corev1.ConditionFalse, 0), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kind := "Pod"
			if _, ok := tt.obj.(*corev1.Node); ok {
				kind = "Node"
			}
			lc, err := lifecycle.NewLifecycle(stages[kind])
			if err != nil {
				t.Fatal(err)
			}
			stage, err := lc.Match(t.Context(), &lifecycle.Event{
				Labels: tt.obj.GetLabels(), Annotations: tt.obj.GetAnnotations(), Data: tt.obj,
			})
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if stage != nil {
				got = stage.Name()
			}
			if got != tt.want {
				t.Errorf("stage = %q, want %q", got, tt.want)
			}
		})
	}
}
