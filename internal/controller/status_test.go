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
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

// tarslog is the seed's tarslog sample, in namespace default.
func tarslog(t *testing.T) *tarsv1beta1.TServer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "tars-tarslog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ts := &tarsv1beta1.TServer{}
	if err := yaml.UnmarshalStrict(data, ts); err != nil {
		t.Fatal(err)
	}
	ts.Namespace = "default"
	return ts
}

// claimFor is claim <volume>-tars-tarslog-<ordinal> of the seed's tarslog in the given phase.
func claimFor(volume string, ordinal int, phase corev1.PersistentVolumeClaimPhase) corev1.PersistentVolumeClaim {
	pvc := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
		Name:   fmt.Sprintf("%s-tars-tarslog-%d", volume, ordinal),
		Labels: map[string]string{tarsv1beta1.LabelLocalVolume: volume},
	}}
	pvc.Status.Phase = phase
	if phase == corev1.ClaimBound {
		pvc.Spec.VolumeName = "pv-" + pvc.Name
	}
	return pvc
}

// withProblem is pvc with a node agent's report that its volume's directory is missing.
func withProblem(pvc corev1.PersistentVolumeClaim, report string) corev1.PersistentVolumeClaim {
	pvc.Annotations = map[string]string{tarsv1beta1.AnnotationVolumeProblem: report}
	return pvc
}

func boundClaims(volume string, ordinals ...int) []corev1.PersistentVolumeClaim {
	claims := make([]corev1.PersistentVolumeClaim, 0, len(ordinals))
	for _, i := range ordinals {
		claims = append(claims, claimFor(volume, i, corev1.ClaimBound))
	}
	return claims
}

const logDir = "remote-log-dir"

func TestVolumesBound(t *testing.T) {
	ts := tarslog(t)
	withCache := tarslog(t)
	withCache.Spec.K8S.Mounts = append(withCache.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{Name: "cache", MountPath: "/cache",
		Source: tarsv1beta1.TK8SMountSource{TLocalVolume: &tarsv1beta1.TLocalVolume{}}})
	scheduled := claimFor(logDir, 3, corev1.ClaimPending)
	scheduled.Annotations = map[string]string{"volume.kubernetes.io/selected-node": "node-3"}
	refused := func(ordinal int, phase corev1.PersistentVolumeClaimPhase, why string) corev1.PersistentVolumeClaim {
		pvc := claimFor(logDir, ordinal, phase)
		pvc.Annotations = map[string]string{"tars.io/ProvisioningRefused": why}
		return pvc
	}
	const full = "node node-2: the node's disk is full"
	for _, tc := range []struct {
		name        string
		ts          *tarsv1beta1.TServer
		replicas    int32
		claims      []corev1.PersistentVolumeClaim
		scProblem   string
		wantReason  string
		wantMessage string
	}{
		{name: "all bound", ts: ts, replicas: 2, claims: boundClaims(logDir, 0, 1),
			wantReason: "AllClaimsBound", wantMessage: "2 claim(s) bound"},
		{name: "no replicas", ts: ts, replicas: 0, wantReason: "AllClaimsBound", wantMessage: "0 claim(s) bound"},
		{name: "claims of replicas scaled away do not count", ts: ts, replicas: 1, claims: boundClaims(logDir, 0, 1, 7),
			wantReason: "AllClaimsBound", wantMessage: "1 claim(s) bound"},
		{
			name: "the first missing claims named in order, the rest counted", ts: ts, replicas: 10,
			claims:     append(boundClaims(logDir, 0, 1, 2, 4), scheduled),
			wantReason: "ClaimsPending",
			wantMessage: "6 of 10 claim(s) not bound yet: remote-log-dir-tars-tarslog-3 (on node node-3), " +
				"remote-log-dir-tars-tarslog-5, remote-log-dir-tars-tarslog-6, remote-log-dir-tars-tarslog-7, " +
				"remote-log-dir-tars-tarslog-8 and 1 more",
		},
		{
			name: "template by template", ts: withCache, replicas: 2,
			claims:     append(boundClaims(logDir, 0, 1), boundClaims("cache", 1)...),
			wantReason: "ClaimsPending", wantMessage: "1 of 4 claim(s) not bound yet: cache-tars-tarslog-0",
		},
		{
			name: "two billion replicas: counted, five named", ts: ts, replicas: 2_000_000_000,
			claims:     boundClaims(logDir, 0, 2),
			wantReason: "ClaimsPending",
			wantMessage: "1999999998 of 2000000000 claim(s) not bound yet: remote-log-dir-tars-tarslog-1, " +
				"remote-log-dir-tars-tarslog-3, remote-log-dir-tars-tarslog-4, remote-log-dir-tars-tarslog-5, " +
				"remote-log-dir-tars-tarslog-6 and 1999999993 more",
		},
		{
			name: "names that are not a replica's claim are ignored", ts: ts, replicas: 1,
			claims: []corev1.PersistentVolumeClaim{
				claimFor(logDir, 0, corev1.ClaimPending),
				{
					ObjectMeta: metav1.ObjectMeta{Name: "remote-log-dir-tars-tarslog-00"},
					Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
				},
				{
					ObjectMeta: metav1.ObjectMeta{Name: "other-tars-tarslog-0"},
					Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
				},
			},
			wantReason: "ClaimsPending", wantMessage: "1 of 1 claim(s) not bound yet: remote-log-dir-tars-tarslog-0",
		},
		{
			name: "a claim an agent handed back says why", ts: ts, replicas: 3,
			claims: []corev1.PersistentVolumeClaim{
				refused(0, corev1.ClaimBound, "node node-1: stale, its volume made since"),
				refused(1, corev1.ClaimPending, full), refused(2, corev1.ClaimPending, strings.Repeat("é", 400)),
			},
			wantReason: "ProvisioningRefused",
			wantMessage: "2 of 3 claim(s) not bound yet: remote-log-dir-tars-tarslog-1 (refused by " + full + "), " +
				"remote-log-dir-tars-tarslog-2 (refused by " + strings.Repeat("é", 254) + "...)",
		},
		{
			name: "a refusal of a claim bound since is no reason", ts: ts, replicas: 2,
			claims: []corev1.PersistentVolumeClaim{
				refused(0, corev1.ClaimBound, full), claimFor(logDir, 1, corev1.ClaimPending),
			},
			wantReason: "ClaimsPending", wantMessage: "1 of 2 claim(s) not bound yet: remote-log-dir-tars-tarslog-1",
		},
		{
			name: "a storage class that provisions nothing says so first", ts: ts, replicas: 1,
			claims:     []corev1.PersistentVolumeClaim{refused(0, corev1.ClaimPending, full)},
			scProblem:  "StorageClass t-storage-class has provisioner x",
			wantReason: "StorageClassNotProvisioning",
			wantMessage: "StorageClass t-storage-class has provisioner x; " +
				"1 of 1 claim(s) not bound yet: remote-log-dir-tars-tarslog-0 (refused by " + full + ")",
		},
		{
			name: "a storage class that provisions nothing", ts: ts, replicas: 1,
			scProblem:  "StorageClass t-storage-class has provisioner x",
			wantReason: "StorageClassNotProvisioning",
			wantMessage: "StorageClass t-storage-class has provisioner x; " +
				"1 of 1 claim(s) not bound yet: remote-log-dir-tars-tarslog-0",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := volumesBound(tc.ts, tc.replicas, tc.claims, tc.scProblem)
			if c.Reason != tc.wantReason || c.Message != tc.wantMessage {
				t.Errorf("volumesBound() = %s %q\nwant %s %q", c.Reason, c.Message, tc.wantReason, tc.wantMessage)
			}
		})
	}
}

// TestVolumesBoundWorkFollowsClaims: a TServer scaled to a huge count (through the scale
// subresource, or stored before the schema's cap) costs a reconcile what its claims cost, not
// what its replica count would.
func TestVolumesBoundWorkFollowsClaims(t *testing.T) {
	ts := tarslog(t)
	claims := boundClaims(logDir, 0, 1, 2)
	small := testing.AllocsPerRun(3, func() { volumesBound(ts, 8, claims, "") })
	huge := testing.AllocsPerRun(3, func() { volumesBound(ts, 1<<20, claims, "") })
	if huge > small+20 {
		t.Errorf("volumesBound allocates %.0f times for 2^20 replicas, %.0f for 8: its work grows with replicas", huge, small)
	}
}

func TestVolumesHealthy(t *testing.T) {
	ts := tarslog(t)
	report := func(ordinal int) string {
		return fmt.Sprintf("directory /usr/local/app/tars/host-mount/default/tars.tarslog/remote-log-dir of volume pv-%d "+
			"is missing on node node-%d (a data disk not mounted?); the agent does not recreate it empty", ordinal, ordinal)
	}
	deleting := withProblem(claimFor(logDir, 4, corev1.ClaimBound), report(4))
	deleting.DeletionTimestamp = new(metav1.Now())
	many := make([]corev1.PersistentVolumeClaim, 0, 7)
	for i := range 7 {
		many = append(many, withProblem(claimFor(logDir, 6-i, corev1.ClaimBound), fmt.Sprintf("missing %d", 6-i)))
	}
	for _, tc := range []struct {
		name        string
		claims      []corev1.PersistentVolumeClaim
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantMessage string
	}{
		{name: "no claims", wantStatus: metav1.ConditionTrue, wantReason: tarsv1beta1.ReasonAllVolumesHealthy,
			wantMessage: "no node agent reports a missing volume directory"},
		{name: "claims without reports", claims: boundClaims(logDir, 0, 1), wantStatus: metav1.ConditionTrue,
			wantReason: tarsv1beta1.ReasonAllVolumesHealthy, wantMessage: "no node agent reports a missing volume directory"},
		{
			name: "one replica's directory missing",
			claims: []corev1.PersistentVolumeClaim{
				claimFor(logDir, 0, corev1.ClaimBound),
				withProblem(claimFor(logDir, 1, corev1.ClaimBound), report(1)),
			},
			wantStatus: metav1.ConditionFalse, wantReason: tarsv1beta1.ReasonVolumeDirectoryMissing,
			wantMessage: "1 claim(s) report a missing volume directory: " +
				"replica tars-tarslog-1 (claim remote-log-dir-tars-tarslog-1): " + report(1),
		},
		{
			name: "replicas in order of ordinal, a claim no replica made last, a claim being deleted left out",
			claims: []corev1.PersistentVolumeClaim{
				withProblem(corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "extra"}}, "gone"),
				withProblem(claimFor(logDir, 10, corev1.ClaimBound), "missing 10"),
				withProblem(claimFor(logDir, 2, corev1.ClaimBound), " "),
				deleting,
			},
			wantStatus: metav1.ConditionFalse, wantReason: tarsv1beta1.ReasonVolumeDirectoryMissing,
			wantMessage: "3 claim(s) report a missing volume directory: " +
				"replica tars-tarslog-2 (claim remote-log-dir-tars-tarslog-2): its volume's directory is missing; " +
				"replica tars-tarslog-10 (claim remote-log-dir-tars-tarslog-10): missing 10; claim extra: gone",
		},
		{
			name: "at most five named", claims: many,
			wantStatus: metav1.ConditionFalse, wantReason: tarsv1beta1.ReasonVolumeDirectoryMissing,
			wantMessage: "7 claim(s) report a missing volume directory: " +
				"replica tars-tarslog-0 (claim remote-log-dir-tars-tarslog-0): missing 0; " +
				"replica tars-tarslog-1 (claim remote-log-dir-tars-tarslog-1): missing 1; " +
				"replica tars-tarslog-2 (claim remote-log-dir-tars-tarslog-2): missing 2; " +
				"replica tars-tarslog-3 (claim remote-log-dir-tars-tarslog-3): missing 3; " +
				"replica tars-tarslog-4 (claim remote-log-dir-tars-tarslog-4): missing 4 and 2 more",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := volumesHealthy(ts, tc.claims)
			want := metav1.Condition{Type: tarsv1beta1.ConditionVolumesHealthy, Status: tc.wantStatus, Reason: tc.wantReason,
				Message: tc.wantMessage, ObservedGeneration: ts.Generation}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("volumesHealthy() (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("a long report is cut", func(t *testing.T) {
		c := volumesHealthy(ts, []corev1.PersistentVolumeClaim{
			withProblem(claimFor(logDir, 0, corev1.ClaimBound), strings.Repeat("é", 4000)),
		})
		if len(c.Message) > 700 || !strings.HasSuffix(c.Message, "é...") {
			t.Errorf("message of %d bytes, ending %q", len(c.Message), c.Message[len(c.Message)-10:])
		}
	})
}

func TestComputeStatusReportsVolumeProblems(t *testing.T) {
	ts := tarslog(t)
	ts.Generation = 3
	o := &observed{statefulSet: expand.StatefulSet(ts),
		claims: []corev1.PersistentVolumeClaim{
			withProblem(claimFor(logDir, 1, corev1.ClaimBound), "directory X is missing on node node-1"),
		}}
	status := computeStatus(ts, o)
	got := make([]string, 0, len(status.Conditions))
	for _, c := range status.Conditions {
		got = append(got, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
	}
	want := []string{"Ready=False/ReplicasNotReady", "VolumesBound=False/ClaimsPending",
		"VolumesHealthy=False/VolumeDirectoryMissing", "NodesAvailable=True/AllNodesAvailable"}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("conditions (-want +got):\n%s", diff)
	}

	// A missing directory is news: written at once, not held back like a rollout's progress.
	if onlyProgress(&ts.Status, &status) {
		t.Error("onlyProgress() = true for a status reporting a missing volume directory")
	}
	var w statusWrites
	w.wrote(ts, ts.CreationTimestamp.Time)
	if d := w.delay(ts, &ts.Status, &status, DefaultProgressInterval, ts.CreationTimestamp.Time); d != 0 {
		t.Errorf("a status reporting a missing volume directory was held back %s", d)
	}
}

func TestComputeStatusReportsReplicasWaitingOnANode(t *testing.T) {
	ts := tarslog(t)
	o := &observed{statefulSet: expand.StatefulSet(ts)}
	calm := computeStatus(ts, o)
	ts.Status = calm
	o.nodeWaits = []nodeWait{{ordinal: 1, node: "node-2",
		state: nodeState{verdict: nodeWaiting, reason: tarsv1beta1.ReasonNodeNotReady}}}
	status := computeStatus(ts, o)
	c := meta.FindStatusCondition(status.Conditions, tarsv1beta1.ConditionNodesAvailable)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tarsv1beta1.ReasonNodeNotReady {
		t.Fatalf("NodesAvailable = %+v, want False %s", c, tarsv1beta1.ReasonNodeNotReady)
	}
	// A replica held to a NotReady node is news: written at once, not held back like a rollout's progress.
	if onlyProgress(&calm, &status) {
		t.Error("onlyProgress() = true for a status reporting a replica waiting on a NotReady node")
	}
	// And so is a second replica joining it (the message changes).
	ts.Status = status
	o.nodeWaits = append(o.nodeWaits, nodeWait{ordinal: 0, node: "node-2",
		state: nodeState{verdict: nodeWaiting, reason: tarsv1beta1.ReasonNodeNotReady}})
	if more := computeStatus(ts, o); onlyProgress(&status, &more) {
		t.Error("onlyProgress() = true for a status naming one more replica waiting on a NotReady node")
	}
}

// TestComputeStatusReady takes the Ready condition through each of its branches.
func TestComputeStatusReady(t *testing.T) {
	ts := tarslog(t) // 2 replicas
	ts.Generation = 3
	noRelease := ts.DeepCopy()
	noRelease.Spec.Release = nil
	sts := func(generation, observed int64, replicas, ready int32) *appsv1.StatefulSet {
		s := expand.StatefulSet(ts)
		s.Generation = generation
		s.Status = appsv1.StatefulSetStatus{ObservedGeneration: observed, Replicas: replicas, ReadyReplicas: ready}
		return s
	}
	for _, tc := range []struct {
		name        string
		ts          *tarsv1beta1.TServer
		o           observed
		wantStatus  metav1.ConditionStatus
		wantReason  string
		wantMessage string
	}{
		{"a conflict comes first", ts, observed{conflicts: []string{"StatefulSet tars-tarslog is not this TServer's"},
			recreating: true, statefulSet: sts(1, 1, 2, 2)},
			metav1.ConditionFalse, tarsv1beta1.ReasonConflict, "StatefulSet tars-tarslog is not this TServer's"},
		{"recreating", ts, observed{recreating: true}, metav1.ConditionFalse, tarsv1beta1.ReasonRecreatingStatefulSet,
			"the StatefulSet is being recreated with new claim templates; its pods keep running"},
		{"no StatefulSet yet", ts, observed{}, metav1.ConditionFalse, tarsv1beta1.ReasonProgressing,
			"the StatefulSet is being updated"},
		{"StatefulSet not observed at its generation", ts, observed{statefulSet: sts(2, 1, 2, 2)},
			metav1.ConditionFalse, tarsv1beta1.ReasonProgressing, "the StatefulSet is being updated"},
		{"fewer ready", ts, observed{statefulSet: sts(1, 1, 2, 1)}, metav1.ConditionFalse,
			tarsv1beta1.ReasonReplicasNotReady, "1 of 2 replicas ready"},
		{"more replicas than asked for (a scale-down under way)", ts, observed{statefulSet: sts(1, 1, 3, 3)},
			metav1.ConditionFalse, tarsv1beta1.ReasonReplicasNotReady, "3 of 2 replicas ready"},
		{"all ready", ts, observed{statefulSet: sts(1, 1, 2, 2)}, metav1.ConditionTrue,
			tarsv1beta1.ReasonAllReplicasReady, "2 of 2 replicas ready"},
		{"no release: no pods, ready", noRelease, observed{statefulSet: sts(1, 1, 0, 0)}, metav1.ConditionTrue,
			tarsv1beta1.ReasonAllReplicasReady, "0 of 0 replicas ready (no release: the server has no pods)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := computeStatus(tc.ts, &tc.o)
			c := meta.FindStatusCondition(status.Conditions, tarsv1beta1.ConditionReady)
			if c == nil {
				t.Fatal("no Ready condition")
			}
			if c.Status != tc.wantStatus || c.Reason != tc.wantReason || c.Message != tc.wantMessage ||
				c.ObservedGeneration != 3 {
				t.Errorf("Ready = %s %s %q (generation %d), want %s %s %q (generation 3)",
					c.Status, c.Reason, c.Message, c.ObservedGeneration, tc.wantStatus, tc.wantReason, tc.wantMessage)
			}
		})
	}
}

func TestVolumesBoundNamesTheNodeAClaimWaitsOn(t *testing.T) {
	ts := tarslog(t)
	claim := func(name, node string, phase corev1.PersistentVolumeClaimPhase) corev1.PersistentVolumeClaim {
		pvc := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{"tars.io/LocalVolume": "remote-log-dir"}}}
		if node != "" {
			pvc.Annotations = map[string]string{"volume.kubernetes.io/selected-node": node}
		}
		pvc.Status.Phase = phase
		if phase == corev1.ClaimBound {
			pvc.Spec.VolumeName = "pv"
		}
		return pvc
	}
	c := volumesBound(ts, 3, []corev1.PersistentVolumeClaim{
		claim("remote-log-dir-tars-tarslog-0", "node-1", corev1.ClaimBound),
		claim("remote-log-dir-tars-tarslog-1", "node-2", corev1.ClaimPending),
		claim("remote-log-dir-tars-tarslog-2", "", corev1.ClaimPending),
	}, "")
	want := "2 of 3 claim(s) not bound yet: remote-log-dir-tars-tarslog-1 (on node node-2), remote-log-dir-tars-tarslog-2"
	if c.Status != metav1.ConditionFalse || c.Reason != "ClaimsPending" || c.Message != want {
		t.Errorf("volumesBound() = %s %s %q, want False ClaimsPending %q", c.Status, c.Reason, c.Message, want)
	}
}

func TestVolumeNodes(t *testing.T) {
	pin := func(ordinal int32, node string) replicaPin { return replicaPin{ordinal: ordinal, node: node} }
	for _, tc := range []struct {
		name     string
		pins     []replicaPin
		replicas int32
		want     string
	}{
		{"no node-local claims", nil, 3, ""},
		{"each replica on its node", []replicaPin{pin(0, "node-1"), pin(1, "node-3"), pin(2, "node-2")}, 3,
			"node-1,node-3,node-2"},
		{"a replica not placed yet", []replicaPin{pin(0, "node-1"), pin(2, "node-2")}, 3, "node-1,-,node-2"},
		{"a replica with volumes on two nodes", []replicaPin{pin(0, "node-1"), pin(0, "node-2")}, 1, "node-1+node-2"},
		{"claims of replicas scaled away are not counted", []replicaPin{pin(0, "node-1"), pin(4, "node-5")}, 1, "node-1"},
		{"many replicas", []replicaPin{pin(0, "n")}, 52, "n" + strings.Repeat(",-", 49) + ",(2 more)"},
	} {
		if got := volumeNodes(tc.pins, tc.replicas); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
