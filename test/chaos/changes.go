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

package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// The changes users make, the keys of Report.Changes.
const (
	changeScaleUp     = "scaled up"
	changeScaleDown   = "scaled down"
	changeOwnership   = "uid/gid/mode edited"
	changeAddMount    = "tLocalVolume mount added"
	changeRemoveMount = "tLocalVolume mount removed"
	changeHostNetwork = "host networking toggled"
	changeRecreate    = "TServer deleted and created again"
	changeDeleteClaim = "claim deleted with its pod"
)

var changeKinds = []string{changeScaleUp, changeScaleDown, changeOwnership, changeAddMount, changeRemoveMount,
	changeHostNetwork, changeRecreate, changeDeleteClaim}

// Ownerships the edits choose from (modes of three octal digits 1 to 7, as admission requires).
var (
	uids  = []string{"0", "1000", "1001", "2000"}
	gids  = []string{"0", "100", "1000"}
	modes = []string{"755", "775", "777", "711", "744"}
)

// change makes the change of e on its server, as a user would with kubectl: what cannot apply
// to the server as it is (scaling down a single replica, removing its only mount) turns into
// its opposite.
func (r *run) change(ctx context.Context, e event) error {
	r.mu.Lock()
	ts := r.want[tarsv1beta1.ResourceName(App, fmt.Sprintf("s%d", e.server))].DeepCopy()
	most := int32(len(r.cfg.Nodes))
	r.mu.Unlock()
	kind := e.change
	replicas := ts.Spec.K8S.Replicas
	switch {
	case kind == changeScaleUp && replicas >= most, kind == changeScaleDown && replicas <= 1:
		kind = map[string]string{changeScaleUp: changeScaleDown, changeScaleDown: changeScaleUp}[kind]
	case kind == changeRemoveMount && len(ts.Spec.K8S.Mounts) <= 1:
		kind = changeAddMount
	}
	r.count(r.report.Changes, kind)
	switch kind {
	case changeScaleUp, changeScaleDown:
		to := replicas + 1
		if kind == changeScaleDown {
			to = replicas - 1
		}
		r.logf("%s: %s from %d to %d replicas", ts.Name, kind, replicas, to)
		return r.update(ctx, ts.Name, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = to })
	case changeOwnership:
		m := r.pick(len(ts.Spec.K8S.Mounts))
		lv := tarsv1beta1.TLocalVolume{
			UID: uids[r.pick(len(uids))], GID: gids[r.pick(len(gids))], Mode: modes[r.pick(len(modes))],
		}
		r.logf("%s: mount %s now %s:%s mode %s", ts.Name, ts.Spec.K8S.Mounts[m].Name, lv.UID, lv.GID, lv.Mode)
		return r.update(ctx, ts.Name, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts[m].Source.TLocalVolume = &lv })
	case changeAddMount:
		r.mu.Lock()
		r.extraMounts++
		name := fmt.Sprintf("extra%d", r.extraMounts)
		r.mu.Unlock()
		r.logf("%s: mount %s added", ts.Name, name)
		return r.update(ctx, ts.Name, func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, localMount(name))
		})
	case changeRemoveMount:
		m := r.pick(len(ts.Spec.K8S.Mounts))
		r.logf("%s: mount %s removed", ts.Name, ts.Spec.K8S.Mounts[m].Name)
		return r.update(ctx, ts.Name, func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Mounts = slices.Delete(ts.Spec.K8S.Mounts, m, m+1)
		})
	case changeHostNetwork:
		r.logf("%s: hostNetwork %t", ts.Name, !ts.Spec.K8S.HostNetwork)
		return r.update(ctx, ts.Name, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.HostNetwork = !ts.Spec.K8S.HostNetwork })
	case changeRecreate:
		r.logf("%s: deleted and created again", ts.Name)
		return r.recreate(ctx, ts)
	default:
		ordinal := r.pick(int(replicas))
		claim := fmt.Sprintf("%s-%s-%d", ts.Spec.K8S.Mounts[r.pick(len(ts.Spec.K8S.Mounts))].Name, ts.Name, ordinal)
		pod := fmt.Sprintf("%s-%d", ts.Name, ordinal)
		r.logf("%s: claim %s and pod %s deleted", ts.Name, claim, pod)
		return r.deleteClaim(ctx, client.ObjectKey{Namespace: ts.Namespace, Name: claim}, pod)
	}
}

// deleteClaim deletes a claim, noting first that a user deleted it (the checker then accepts
// that its data goes), and then its pod, as a user who gives up a replica's data does.
func (r *run) deleteClaim(ctx context.Context, key client.ObjectKey, pod string) error {
	pvc := &corev1.PersistentVolumeClaim{}
	err := retry(ctx, func() error { return r.cfg.Client.Get(ctx, key, pvc) })
	if err == nil {
		r.mu.Lock()
		r.userDeleted[pvc.UID] = true
		kill := r.cleanupKills > 0 && pvc.Spec.VolumeName != ""
		if kill {
			r.cleanupKills--
		}
		r.mu.Unlock()
		if kill {
			if node := pvc.Annotations[volumehelpers.AnnSelectedNode]; node != "" {
				r.faults.Go(func() { r.killAtRelease(ctx, pvc.Spec.VolumeName, node) })
			}
		}
		err = retry(ctx, func() error {
			return client.IgnoreNotFound(r.cfg.Client.Delete(ctx, pvc, client.Preconditions{UID: &pvc.UID}))
		})
	}
	if client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("deleting claim %s: %w", key.Name, err)
	}
	podObj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: pod}}
	if err := retry(ctx, func() error { return client.IgnoreNotFound(r.cfg.Client.Delete(ctx, podObj)) }); err != nil {
		return fmt.Errorf("deleting pod %s: %w", pod, err)
	}
	return nil
}

// pick draws an index below n for a change; pickFault one for a fault.
func (r *run) pick(n int) int { return r.draw(r.rng, n) }

func (r *run) pickFault(n int) int { return r.draw(r.faultRng, n) }

func (r *run) draw(rng *rand.Rand, n int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return rng.IntN(n)
}

// update changes the TServer name as users want it with mutate, and applies its spec.
func (r *run) update(ctx context.Context, name string, mutate func(*tarsv1beta1.TServer)) error {
	r.mu.Lock()
	mutate(r.want[name])
	spec := r.want[name].Spec.DeepCopy()
	ns := r.want[name].Namespace
	r.mu.Unlock()
	err := retry(ctx, func() error {
		ts := &tarsv1beta1.TServer{}
		if err := r.cfg.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, ts); err != nil {
			return err
		}
		ts.Spec = *spec
		return r.cfg.Client.Update(ctx, ts)
	})
	if err != nil {
		return fmt.Errorf("updating TServer %s: %w", name, err)
	}
	return nil
}

// recreate deletes ts, waits until it is gone, and creates it again as users want it.
func (r *run) recreate(ctx context.Context, ts *tarsv1beta1.TServer) error {
	if err := retry(ctx, func() error { return client.IgnoreNotFound(r.cfg.Client.Delete(ctx, ts)) }); err != nil {
		return fmt.Errorf("deleting TServer %s: %w", ts.Name, err)
	}
	for {
		err := retry(ctx, func() error {
			return r.cfg.Client.Get(ctx, client.ObjectKeyFromObject(ts), &tarsv1beta1.TServer{})
		})
		if apierrors.IsNotFound(err) {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
	again := &tarsv1beta1.TServer{ObjectMeta: metav1.ObjectMeta{Namespace: ts.Namespace, Name: ts.Name}, Spec: ts.Spec}
	err := retry(ctx, func() error { return r.cfg.Client.Create(ctx, again.DeepCopy()) })
	if err != nil && !apierrors.IsAlreadyExists(err) { // made by an attempt whose answer was lost
		return fmt.Errorf("creating TServer %s again: %w", ts.Name, err)
	}
	return nil
}
