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
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// DefaultProgressInterval is the least time between two status writes of a TServer that only
// report a rollout's progress. A TServer's status write costs the API server about 10 ms of CPU,
// three times a ConfigMap's (`make bench` scenario 5); a rollout of many servers would otherwise
// write each one's status every statusBatchPeriod while its replicas come up one by one.
const DefaultProgressInterval = 10 * time.Second

// progressWriteRate bounds the progress-only status writes of all TServers together, per second:
// when more servers roll out at once than ProgressInterval spaces to that rate, each one's
// reports are spaced further apart. A thousand servers rolling out wrote each one's progress
// every 10 s, 4 writes per server in a 5-minute rollout and two thirds of the API server's extra
// CPU (`make bench` scenario 8); at this rate, 1,000 rolling servers report once in 200 s.
const progressWriteRate = 5

// progressConditions are the reasons of conditions that say a rollout is under way and nothing
// is wrong: replicas and claims that are not there yet.
var progressConditions = map[string][]string{
	tarsv1beta1.ConditionReady:        {tarsv1beta1.ReasonProgressing, tarsv1beta1.ReasonReplicasNotReady},
	tarsv1beta1.ConditionVolumesBound: {tarsv1beta1.ReasonClaimsPending},
}

// inProgress says whether c is false for one of the reasons of progressConditions.
func inProgress(c *metav1.Condition) bool {
	return c.Status == metav1.ConditionFalse && slices.Contains(progressConditions[c.Type], c.Reason)
}

// watchConditions are the conditions that watch over a running server, with the reason of
// their normal state (true). Reporting that state for the first time or for a new generation
// is not news; a problem appearing, changing (its message names what is affected) or going
// away is.
var watchConditions = map[string]string{
	tarsv1beta1.ConditionVolumesHealthy: tarsv1beta1.ReasonAllVolumesHealthy,
	tarsv1beta1.ConditionNodesAvailable: tarsv1beta1.ReasonAllNodesAvailable,
}

// rolloutSteps are the conditions whose becoming true, from in progress, is a step of a rollout
// while the server is not ready yet (its Ready condition stays in progress): the claims all bound
// before the replicas are. It is said with the next progress report, or with Ready. A thousand
// servers rolling out wrote it apart from their Ready, a third of their status writes (`make
// bench` scenario 8).
var rolloutSteps = map[string]bool{tarsv1beta1.ConditionVolumesBound: true}

// onlyProgress says whether status differs from old only by a rollout's progress: replica
// counts, messages, conditions that were and stay in progress (first set, or moving between
// progress reasons or generations), and rolloutSteps done while Ready stays in progress. Any
// other condition becoming true, a problem, or a ready server losing replicas is news.
func onlyProgress(old, status *tarsv1beta1.TServerStatus) bool {
	ready := meta.FindStatusCondition(status.Conditions, tarsv1beta1.ConditionReady)
	rolling := ready != nil && inProgress(ready)
	for i := range status.Conditions {
		c := &status.Conditions[i]
		was := meta.FindStatusCondition(old.Conditions, c.Type)
		if normal, watching := watchConditions[c.Type]; watching {
			if was == nil && (c.Status != metav1.ConditionTrue || c.Reason != normal) ||
				was != nil && (was.Status != c.Status || was.Reason != c.Reason ||
					c.Status != metav1.ConditionTrue && was.Message != c.Message) {
				return false
			}
			continue
		}
		unchanged := was != nil && was.Status == c.Status && was.Reason == c.Reason &&
			was.ObservedGeneration == c.ObservedGeneration
		fromProgress := was == nil || inProgress(was)
		step := rolling && rolloutSteps[c.Type] && c.Status == metav1.ConditionTrue
		if !unchanged && (!inProgress(c) && !step || !fromProgress) {
			return false
		}
	}
	return true
}

// statusWrites remembers, for each TServer, when its status was last written (to space out the
// writes that only report progress) and what was written: until the cache shows that write, the
// controller computes and compares against it, not against the cache's older status. Otherwise a
// status computed equal to the cache's (a replica lost and back while the TServer's watch was
// down, as when kube-apiserver restarts) would not be written over the one last stored, and a
// status change is no event that reconciles a TServer: its status would stay wrong for good (a
// chaos run found a server at "2 of 3 replicas ready" ten minutes after all three were). A manager
// that starts afresh counts from each TServer's creation and trusts the cache.
type statusWrites struct {
	mu   sync.Mutex
	last map[types.NamespacedName]statusWrite
	// progressing are the TServers that last had only progress to write, with when they asked:
	// their number spaces progress writes out (spacing).
	progressing map[types.NamespacedName]time.Time
	// clock tells the time of status writes; nil is the wall clock. (The reconciler's Clock is
	// node loss's: its suite steps it past grace periods.)
	clock clock.PassiveClock
}

// now is the time by the writes' clock.
func (w *statusWrites) now() time.Time {
	if w.clock == nil {
		return time.Now()
	}
	return w.clock.Now()
}

// statusWrite is a status written: when, over which object (uid) and resourceVersion it left.
type statusWrite struct {
	at     time.Time
	uid    types.UID
	rv     string
	status *tarsv1beta1.TServerStatus
}

// stored is the status the TServer ts has in the API server as far as the controller knows:
// its last write, when the cache still shows another status at another resourceVersion (it has
// not seen the write yet); else the cache's.
func (w *statusWrites) stored(ts *tarsv1beta1.TServer) tarsv1beta1.TServerStatus {
	w.mu.Lock()
	last, ok := w.last[client.ObjectKeyFromObject(ts)]
	w.mu.Unlock()
	if ok && last.status != nil && last.uid == ts.UID && last.rv != ts.ResourceVersion &&
		!equality.Semantic.DeepEqual(*last.status, ts.Status) {
		return *last.status.DeepCopy()
	}
	return *ts.Status.DeepCopy()
}

// delay is how long to hold back writing status over stored, the one the TServer ts has: zero
// to write now.
func (w *statusWrites) delay(ts *tarsv1beta1.TServer, stored, status *tarsv1beta1.TServerStatus, interval time.Duration,
	now time.Time) time.Duration {
	key := client.ObjectKeyFromObject(ts)
	w.mu.Lock()
	defer w.mu.Unlock()
	if interval <= 0 || !onlyProgress(stored, status) {
		delete(w.progressing, key)
		return 0
	}
	interval = w.spacing(key, interval, now)
	last, ok := w.last[key]
	at := last.at
	if !ok {
		at = ts.CreationTimestamp.Time
	}
	return max(0, at.Add(interval).Sub(now))
}

// spacing records that the TServer key has only progress to write at now, and returns the
// least time between its progress writes: interval, or longer when more TServers have only
// progress to write than interval spaces to progressWriteRate. A TServer counts until it has
// news to write, is forgotten, or has not asked for longer than its spacing and interval (a
// held one is reconciled again when its hold ends, and asks again). w.mu is held.
func (w *statusWrites) spacing(key types.NamespacedName, interval time.Duration, now time.Time) time.Duration {
	if w.progressing == nil {
		w.progressing = map[types.NamespacedName]time.Time{}
	}
	spread := func() time.Duration {
		return time.Duration(len(w.progressing)) * time.Second / progressWriteRate
	}
	horizon := max(interval, spread()) + interval
	for k, at := range w.progressing {
		if now.Sub(at) > horizon {
			delete(w.progressing, k)
		}
	}
	w.progressing[key] = now
	return max(interval, spread())
}

// wrote records a status write at now: ts as the API server returned it.
func (w *statusWrites) wrote(ts *tarsv1beta1.TServer, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[types.NamespacedName]statusWrite{}
	}
	w.last[client.ObjectKeyFromObject(ts)] = statusWrite{
		at: now, uid: ts.UID, rv: ts.ResourceVersion, status: ts.Status.DeepCopy(),
	}
}

// forget drops what is remembered of the TServer key, once it is gone.
func (w *statusWrites) forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.last, key)
	delete(w.progressing, key)
}

// updateStatus writes the status computed from what this reconcile observed, if it changed;
// a change that only reports progress is held back until ProgressInterval after the last write,
// and held says how long that is.
func (r *TServerReconciler) updateStatus(ctx context.Context, ts *tarsv1beta1.TServer,
	o *observed) (held time.Duration, err error) {
	// What the API server has: the cache's status, or the last one written if the cache has not
	// seen it yet.
	old := ts.DeepCopy()
	old.Status = r.statusWrites.stored(ts)
	status := computeStatus(old, o)
	if equality.Semantic.DeepEqual(status, old.Status) {
		return 0, nil
	}
	now := r.statusWrites.now()
	if wait := r.statusWrites.delay(ts, &old.Status, &status, r.ProgressInterval, now); wait > 0 {
		return wait, nil
	}
	// A merge patch from the stored status, not an update: the controller is the status' only
	// writer, and a TServer read from the cache may be a version behind.
	patch := client.MergeFrom(old)
	ts.Status = status
	if err := r.Status().Patch(ctx, ts, patch); err != nil {
		return 0, err
	}
	r.statusWrites.wrote(ts, now)
	r.reportProblems(ctx, ts, &old.Status)
	return 0, nil
}

// reportProblems sends a Warning event for each condition that watches over a running server
// (watchConditions) that the status just written makes false, or false for another reason or
// about other replicas than before: a replica's data is not where it was, or a replica is held to
// a node that is gone or not Ready.
func (r *TServerReconciler) reportProblems(ctx context.Context, ts *tarsv1beta1.TServer,
	old *tarsv1beta1.TServerStatus) {
	for _, conditionType := range slices.Sorted(maps.Keys(watchConditions)) {
		c := meta.FindStatusCondition(ts.Status.Conditions, conditionType)
		if c == nil || c.Status != metav1.ConditionFalse {
			continue
		}
		if was := meta.FindStatusCondition(old.Conditions, conditionType); was != nil &&
			was.Status == c.Status && was.Reason == c.Reason && was.Message == c.Message {
			continue
		}
		logf.FromContext(ctx).Info("Reported a problem", "condition", conditionType, "reason", c.Reason, "message", c.Message)
		r.Recorder.Eventf(ts, nil, corev1.EventTypeWarning, c.Reason, "Reconcile", "%s", truncate(c.Message, maxEventNote))
	}
}
