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
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// testVolume is a released volume of this node as the agent makes them.
func testVolume() *corev1.PersistentVolume {
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-1"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
			Local: &corev1.LocalVolumeSource{Path: "/tars/team-a/Tars.TarsLog/log"},
		}},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeReleased},
	}
}

// verboseRecorder records events with their action, which names the step of a cleanup.
func verboseRecorder() *events.FakeRecorder {
	return &events.FakeRecorder{Events: make(chan string, 10), Verbose: true}
}

// only receives the one event recorder holds, failing t if it holds none or more.
func only(t *testing.T, recorder *events.FakeRecorder) string {
	t.Helper()
	var got []string
	for len(recorder.Events) > 0 {
		got = append(got, <-recorder.Events)
	}
	if len(got) != 1 {
		t.Fatalf("recorded %d events, want 1: %q", len(got), got)
	}
	return got[0]
}

// A refusal is the verdict on a cleanup: the claims of its group waiting on this node hear it,
// not a failure of an earlier cleanup of the same volume, however long that had been failing.
func TestRefusalReplacesFailure(t *testing.T) {
	recorder := verboseRecorder()
	a := &Agent{Config: Config{NodeName: "node-1", GCGracePeriod: time.Minute}, Recorder: recorder,
		refusalStored: make(chan event.GenericEvent, 1)}
	volumes, claims := &VolumeReconciler{Agent: a}, &ClaimReconciler{Agent: a}
	pv := testVolume()
	a.moveFailed.Store(pv.Name, cleanupFailure{err: "rename: input/output error", since: time.Now().Add(-time.Hour)})
	if got := claims.cleanupFailed(pv.Name); got != "rename: input/output error" {
		t.Fatalf("cleanupFailed() = %q before the refusal, want the failure", got)
	}
	refused := testutil.ToFloat64(cleanupsRefused)

	const why = "its directory is used by volume pv-2"
	result := volumes.refuse(context.Background(), pv, why)
	if got := claims.cleanupFailed(pv.Name); got != "" {
		t.Errorf("cleanupFailed() = %q after a refusal, want none", got)
	}
	if got := claims.cleanupRefused(pv.Name); got != why {
		t.Errorf("cleanupRefused() = %q, want %q", got, why)
	}
	if result.RequeueAfter != time.Minute {
		t.Errorf("a refused cleanup is looked at again after %s, want the grace period", result.RequeueAfter)
	}
	if got := testutil.ToFloat64(cleanupsRefused) - refused; got != 1 {
		t.Errorf("a refusal counted %v refused cleanups, want 1", got)
	}
	select {
	case e := <-a.refusalStored:
		if e.Object.GetName() != pv.Name {
			t.Errorf("the claims waiting on volume %s were woken for %s", pv.Name, e.Object.GetName())
		}
	default:
		t.Error("the claims waiting on the volume were not woken to hear the refusal")
	}
	if e := only(t, recorder); !strings.HasPrefix(e, "Warning CleanupRefused Delete ") || !strings.Contains(e, why) {
		t.Errorf("the event of a refusal %q does not say CleanupRefused, Delete and why", e)
	}
}

// A check cut short because the agent is stopping is no failure of the cleanup: neither counted
// nor reported. A check that fails while the agent runs is both, once.
func TestCheckFailed(t *testing.T) {
	recorder := verboseRecorder()
	r := &VolumeReconciler{Agent: &Agent{Config: Config{NodeName: "node-1"}, Recorder: recorder}}
	pv := testVolume()
	failures := agentErrors.WithLabelValues(reasonCleanup)
	before := testutil.ToFloat64(failures)

	stopping, stop := context.WithCancel(context.Background())
	stop()
	r.checkFailed(stopping, pv, context.Canceled)
	if got := testutil.ToFloat64(failures); got != before {
		t.Errorf("a check cut short by the agent stopping counted %v cleanup errors", got-before)
	}
	select {
	case e := <-recorder.Events:
		t.Errorf("a check cut short by the agent stopping was reported: %q", e)
	default:
	}

	r.checkFailed(context.Background(), pv, errors.New("the API server is unavailable"))
	if got := testutil.ToFloat64(failures); got != before+1 {
		t.Errorf("a failed check counted %v cleanup errors, want 1", got-before)
	}
	e := only(t, recorder)
	for _, want := range []string{"Warning CleanupFailed Check ", "node-1", "/tars/team-a/Tars.TarsLog/log",
		"the API server is unavailable"} {
		if !strings.Contains(e, want) {
			t.Errorf("the event of a failed check %q does not say %q", e, want)
		}
	}
}
