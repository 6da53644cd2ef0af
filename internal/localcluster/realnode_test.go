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
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestRealNodeDaemonSet: the agent DaemonSet of config/default keeps all it was rendered with
// (host root, capabilities, the tars.io/node affinity) and only gains the image, Never pulled, the
// extra flags and the real-node term.
func TestRealNodeDaemonSet(t *testing.T) {
	objs, err := readObjects(filepath.Join("..", "..", "config", "agent", "daemonset.yaml"))
	if err != nil || len(objs) != 1 {
		t.Fatalf("reading the DaemonSet: %v (%d objects)", err, len(objs))
	}
	before := &appsv1.DaemonSet{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, before); err != nil {
		t.Fatal(err)
	}
	if err := realNodeDaemonSet(objs[0], "localhost/tserver-operator:dev", []string{"--resync-period=2s"}); err != nil {
		t.Fatal(err)
	}
	ds := &appsv1.DaemonSet{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[0].Object, ds); err != nil {
		t.Fatal(err)
	}
	agent, was := ds.Spec.Template.Spec.Containers[0], before.Spec.Template.Spec.Containers[0]
	if agent.Image != "localhost/tserver-operator:dev" || agent.ImagePullPolicy != corev1.PullNever {
		t.Errorf("image %s, pulled %s", agent.Image, agent.ImagePullPolicy)
	}
	if want := append(slices.Clone(was.Args), "--resync-period=2s"); !slices.Equal(agent.Args, want) {
		t.Errorf("args %v, want %v", agent.Args, want)
	}
	if agent.SecurityContext.String() != was.SecurityContext.String() ||
		!slices.EqualFunc(agent.VolumeMounts, was.VolumeMounts, func(a, b corev1.VolumeMount) bool {
			return a.String() == b.String()
		}) || ds.Spec.Template.Spec.Volumes[0].String() != before.Spec.Template.Spec.Volumes[0].String() {
		t.Errorf("the security context, mounts or volumes changed")
	}
	terms := ds.Spec.Template.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || len(terms[0].MatchExpressions) != 2 || terms[0].MatchExpressions[0].Key != "tars.io/node" ||
		terms[0].MatchExpressions[1].Key != RealNodeLabel {
		t.Errorf("node affinity %v: want tars.io/node and %s", terms, RealNodeLabel)
	}
}
