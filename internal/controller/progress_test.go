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
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

// status is a TServer status with conditions Ready and VolumesBound of the given status and
// reason ("True"/"False" first), observed at generation 1.
func status(ready, readyReason, bound, boundReason string, readyReplicas int32) tarsv1beta1.TServerStatus {
	return tarsv1beta1.TServerStatus{ReadyReplicas: readyReplicas, ObservedGeneration: 1, Conditions: []metav1.Condition{
		{Type: tarsv1beta1.ConditionReady, Status: metav1.ConditionStatus(ready), Reason: readyReason, ObservedGeneration: 1},
		{Type: tarsv1beta1.ConditionVolumesBound, Status: metav1.ConditionStatus(bound), Reason: boundReason,
			ObservedGeneration: 1},
	}}
}

// withVolumesHealthy is s with a VolumesHealthy condition of the given status, reason and message.
func withVolumesHealthy(s tarsv1beta1.TServerStatus, healthy, reason, message string) tarsv1beta1.TServerStatus {
	s.Conditions = append(slices.Clone(s.Conditions), metav1.Condition{Type: tarsv1beta1.ConditionVolumesHealthy,
		Status: metav1.ConditionStatus(healthy), Reason: reason, Message: message, ObservedGeneration: s.ObservedGeneration})
	return s
}

func TestOnlyProgress(t *testing.T) {
	rolling := status("False", "ReplicasNotReady", "False", "ClaimsPending", 0)
	moreReady := status("False", "ReplicasNotReady", "False", "ClaimsPending", 2)
	moreReady.Conditions[0].Message = "2 of 3 replicas ready"
	ready := status("True", "AllReplicasReady", "True", "AllClaimsBound", 3)
	newGeneration := func(s tarsv1beta1.TServerStatus) tarsv1beta1.TServerStatus {
		s.ObservedGeneration = 2
		s.Conditions = append([]metav1.Condition(nil), s.Conditions...)
		for i := range s.Conditions {
			s.Conditions[i].ObservedGeneration = 2
		}
		return s
	}
	healthy := func(s tarsv1beta1.TServerStatus) tarsv1beta1.TServerStatus {
		return withVolumesHealthy(s, "True", tarsv1beta1.ReasonAllVolumesHealthy, "")
	}
	missing := func(s tarsv1beta1.TServerStatus, message string) tarsv1beta1.TServerStatus {
		return withVolumesHealthy(s, "False", tarsv1beta1.ReasonVolumeDirectoryMissing, message)
	}
	for _, tc := range []struct {
		name     string
		old, new tarsv1beta1.TServerStatus
		want     bool
	}{
		{"first status of a rollout", tarsv1beta1.TServerStatus{}, rolling, true},
		{"more replicas ready, new messages", rolling, moreReady, true},
		{"StatefulSet seen: Progressing to ReplicasNotReady", status("False", "Progressing", "False", "ClaimsPending", 0),
			rolling, true},
		{"a spec change observed during a rollout", rolling, newGeneration(rolling), true},
		{"claims all bound, replicas not yet", rolling, status("False", "ReplicasNotReady", "True", "AllClaimsBound", 1),
			true},
		{"first status with claims all bound, replicas not yet", tarsv1beta1.TServerStatus{},
			status("False", "ReplicasNotReady", "True", "AllClaimsBound", 1), true},
		{"claims all bound and a conflict", rolling, status("False", "Conflict", "True", "AllClaimsBound", 1), false},
		{"claims all bound after a refusal", status("False", "ReplicasNotReady", "False", "ProvisioningRefused", 0),
			status("False", "ReplicasNotReady", "True", "AllClaimsBound", 1), false},
		{"claims bound again on a ready server losing replicas",
			status("True", "AllReplicasReady", "False", "ClaimsPending", 3),
			status("False", "ReplicasNotReady", "True", "AllClaimsBound", 2), false},
		{"server ready", status("False", "ReplicasNotReady", "True", "AllClaimsBound", 2), ready, false},
		{"first status already ready", tarsv1beta1.TServerStatus{}, ready, false},
		{"ready server losing a replica", ready, status("False", "ReplicasNotReady", "True", "AllClaimsBound", 2), false},
		{"ready server's spec change observed", ready, newGeneration(ready), false},
		{"a conflict", rolling, status("False", "Conflict", "False", "ClaimsPending", 0), false},
		{"a storage class that provisions nothing", rolling,
			status("False", "ReplicasNotReady", "False", "StorageClassNotProvisioning", 0), false},
		{"a claim pending again", ready, status("True", "AllReplicasReady", "False", "ClaimsPending", 3), false},
		{"first status of a rollout, volumes healthy", tarsv1beta1.TServerStatus{}, healthy(rolling), true},
		{"a spec change observed during a rollout, volumes healthy", healthy(rolling), newGeneration(healthy(rolling)), true},
		{"more replicas ready, volumes healthy", healthy(rolling), healthy(moreReady), true},
		{"first status already with a directory missing", tarsv1beta1.TServerStatus{}, missing(rolling, "replica 0"), false},
		{"a directory missing during a rollout", healthy(rolling), missing(rolling, "replica 0"), false},
		{"a directory missing on a ready server", healthy(ready), missing(ready, "replica 0"), false},
		{"another replica's directory missing", missing(rolling, "replica 0"), missing(rolling, "replicas 0 and 1"), false},
		{"a missing directory still missing, more replicas ready", missing(rolling, "replica 0"),
			missing(moreReady, "replica 0"), true},
		{"the directory back", missing(rolling, "replica 0"), healthy(rolling), false},
	} {
		if got := onlyProgress(&tc.old, &tc.new); got != tc.want {
			t.Errorf("%s: onlyProgress() = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStatusWritesDelay(t *testing.T) {
	created := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ts := &tarsv1beta1.TServer{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: "tars-tarslog", CreationTimestamp: metav1.NewTime(created),
	}}
	key := types.NamespacedName{Namespace: ts.Namespace, Name: ts.Name}
	rolling := status("False", "ReplicasNotReady", "False", "ClaimsPending", 0)
	const interval = 10 * time.Second
	var w statusWrites

	if got := w.delay(ts, &ts.Status, &rolling, interval, created.Add(2*time.Second)); got != 8*time.Second {
		t.Errorf("first progress 2s after creation: delay %s, want 8s (counted from creation)", got)
	}
	if got := w.delay(ts, &ts.Status, &rolling, interval, created.Add(12*time.Second)); got != 0 {
		t.Errorf("first progress 12s after creation: delay %s, want 0", got)
	}
	if got := w.delay(ts, &ts.Status, &rolling, 0, created.Add(time.Second)); got != 0 {
		t.Errorf("interval 0: delay %s, want 0", got)
	}

	ts.Status = rolling
	w.wrote(ts, created.Add(12*time.Second))
	moreReady := status("False", "ReplicasNotReady", "False", "ClaimsPending", 2)
	if got := w.delay(ts, &ts.Status, &moreReady, interval, created.Add(15*time.Second)); got != 7*time.Second {
		t.Errorf("progress 3s after the last write: delay %s, want 7s", got)
	}
	bound := status("False", "ReplicasNotReady", "True", "AllClaimsBound", 2)
	if got := w.delay(ts, &ts.Status, &bound, interval, created.Add(15*time.Second)); got != 7*time.Second {
		t.Errorf("claims bound 3s after the last write, replicas not yet: delay %s, want 7s (a step of the rollout)", got)
	}
	conflict := status("False", "Conflict", "False", "ClaimsPending", 2)
	if got := w.delay(ts, &ts.Status, &conflict, interval, created.Add(15*time.Second)); got != 0 {
		t.Errorf("a conflict 3s after the last write: delay %s, want 0 (news)", got)
	}

	w.forget(key)
	if got := w.delay(ts, &ts.Status, &moreReady, interval, created.Add(15*time.Second)); got != 0 {
		t.Errorf("after forget, 15s after creation: delay %s, want 0", got)
	}
}

func TestStatusWritesSpacedByRollingServers(t *testing.T) {
	created := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	rolling := status("False", "ReplicasNotReady", "False", "ClaimsPending", 0)
	ready := status("True", "AllReplicasReady", "True", "AllClaimsBound", 3)
	const interval = 10 * time.Second
	var w statusWrites
	server := func(i int) *tarsv1beta1.TServer {
		return &tarsv1beta1.TServer{ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: fmt.Sprintf("s%d", i), CreationTimestamp: metav1.NewTime(created),
		}}
	}
	// A thousand servers roll out at once: the last to ask waits 200 s, not 10 s, from its creation.
	now := created.Add(time.Second)
	var got time.Duration
	for i := range 1000 {
		got = w.delay(server(i), &tarsv1beta1.TServerStatus{}, &rolling, interval, now)
	}
	if want := 200*time.Second - time.Second; got != want {
		t.Errorf("1,000 servers rolling out: delay %s, want %s", got, want)
	}
	// Servers with news leave the count: the next waits as long as the rest still rolling make it.
	for i := range 900 {
		if d := w.delay(server(i), &rolling, &ready, interval, now); d != 0 {
			t.Fatalf("a server becoming ready: delay %s, want 0 (news)", d)
		}
	}
	got = w.delay(server(999), &tarsv1beta1.TServerStatus{}, &rolling, interval, now)
	if want := 20*time.Second - time.Second; got != want {
		t.Errorf("100 servers rolling out: delay %s, want %s", got, want)
	}
	// Those that stopped asking are not counted once their spacing and interval are past.
	later := now.Add(31 * time.Second)
	if got := w.delay(server(5000), &tarsv1beta1.TServerStatus{}, &rolling, interval, later); got != 0 {
		t.Errorf("one server rolling out 32s after creation: delay %s, want 0", got)
	}
	if n := len(w.progressing); n != 1 {
		t.Errorf("%d servers counted as rolling out, want 1", n)
	}
}

// statusFixture is a reconciler over a fake API server holding ts (uid-1, namespace default),
// withReady what a reconcile observes of its 2-replica StatefulSet with n ready, and read the
// TServer as the API server has it.
func statusFixture(t *testing.T, ts *tarsv1beta1.TServer) (r *TServerReconciler, withReady func(n int32) *observed,
	read func() *tarsv1beta1.TServer) {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tarsv1beta1.AddToScheme(scheme)
	ts.Namespace, ts.UID = "default", "uid-1"
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(ts).WithStatusSubresource(ts).Build()
	r = &TServerReconciler{Client: c, Scheme: scheme, Recorder: events.NewFakeRecorder(100)}
	withReady = func(n int32) *observed {
		sts := expand.StatefulSet(ts)
		sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 2, ReadyReplicas: n,
			CurrentReplicas: 2, UpdatedReplicas: 2}
		return &observed{statefulSet: sts}
	}
	read = func() *tarsv1beta1.TServer {
		got := &tarsv1beta1.TServer{}
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(ts), got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	return r, withReady, read
}

// TestStatusWrittenOverAStaleCache has the cache miss the controller's last status write (a
// replica lost), then the replica come back: the status computed equals the cache's but not the
// one stored, and is written.
func TestStatusWrittenOverAStaleCache(t *testing.T) {
	ctx := context.Background()
	r, withReady, read := statusFixture(t, tarslog(t))
	ready := func(ts *tarsv1beta1.TServer) metav1.ConditionStatus {
		return meta.FindStatusCondition(ts.Status.Conditions, tarsv1beta1.ConditionReady).Status
	}

	if _, err := r.updateStatus(ctx, read(), withReady(2)); err != nil {
		t.Fatal(err)
	}
	stale := read() // all ready: what the cache keeps showing
	if ready(stale) != metav1.ConditionTrue {
		t.Fatalf("Ready = %s with both replicas ready", ready(stale))
	}
	if _, err := r.updateStatus(ctx, read(), withReady(1)); err != nil {
		t.Fatal(err)
	}
	if got := read(); ready(got) != metav1.ConditionFalse || got.Status.ReadyReplicas != 1 {
		t.Fatalf("after a replica was lost: Ready %s, %d ready", ready(got), got.Status.ReadyReplicas)
	}
	if _, err := r.updateStatus(ctx, stale.DeepCopy(), withReady(2)); err != nil {
		t.Fatal(err)
	}
	if got := read(); ready(got) != metav1.ConditionTrue || got.Status.ReadyReplicas != 2 {
		t.Fatalf("the replica back, computed over a cache that missed its loss: stored Ready %s, %d ready",
			ready(got), got.Status.ReadyReplicas)
	}

	// A TServer made again under the name starts from its own status.
	var w statusWrites
	written := read()
	w.wrote(written, time.Now())
	if got := w.stored(stale); !equality.Semantic.DeepEqual(got, written.Status) {
		t.Error("a stale cache: stored() is not the status written")
	}
	again := stale.DeepCopy()
	again.UID = "uid-2"
	if got := w.stored(again); !equality.Semantic.DeepEqual(got, again.Status) {
		t.Error("another TServer of the name: stored() is not its own status")
	}
}

// TestUpdateStatusHoldsProgress runs the status path on a fake clock: a status that only reports
// progress is written ProgressInterval after the TServer's creation or its last status write, and
// held until then (updateStatus says for how long); news is written at once.
func TestUpdateStatusHoldsProgress(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	ts := tarslog(t)
	ts.CreationTimestamp = metav1.NewTime(created)
	r, withReady, read := statusFixture(t, ts)
	clock := clocktesting.NewFakePassiveClock(created)
	r.ProgressInterval, r.statusWrites.clock = 10*time.Second, clock
	step := func(at time.Duration, o *observed, wantHeld time.Duration, wantReady int32, wantWritten bool) {
		t.Helper()
		clock.SetTime(created.Add(at))
		before := read()
		held, err := r.updateStatus(ctx, before.DeepCopy(), o)
		if err != nil {
			t.Fatal(err)
		}
		after := read()
		if written := after.ResourceVersion != before.ResourceVersion; written != wantWritten || held != wantHeld {
			t.Errorf("at +%s: written %v, held %s; want written %v, held %s", at, written, held, wantWritten, wantHeld)
		}
		if after.Status.ReadyReplicas != wantReady {
			t.Errorf("at +%s: %d ready replicas stored, want %d", at, after.Status.ReadyReplicas, wantReady)
		}
	}

	step(2*time.Second, withReady(0), 8*time.Second, 0, false) // progress: counted from creation
	step(10*time.Second, withReady(0), 0, 0, true)
	step(13*time.Second, withReady(1), 7*time.Second, 0, false) // more ready: progress again
	step(20*time.Second, withReady(1), 0, 1, true)
	step(21*time.Second, withReady(2), 0, 2, true)  // ready: news, written at once
	step(22*time.Second, withReady(2), 0, 2, false) // unchanged: nothing to write
	step(23*time.Second, withReady(1), 0, 1, true)  // a ready server losing a replica: news
}
