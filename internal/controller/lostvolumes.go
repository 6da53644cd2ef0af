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
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// lostVolumeSweepInterval is how often the manager looks for node-local volumes that no claim
// holds on nodes that are gone, besides when a node goes.
const lostVolumeSweepInterval = 30 * time.Minute

// lostVolumeSweeper deletes node-local volumes that no claim is bound to (Available, Released or
// Failed) on nodes that are gone, as freeReplica does for bound ones: no agent is left to clean
// them, and a claim bound to one could never run. Each is made Retain first, so its directory
// is kept should the node come back. Volumes whose reclaim policy is Retain are left alone (an
// administrator keeps them on purpose, or the agent found data in their directory), except those
// freeReplica marked. It runs on the leader, at start, when a node goes, and every
// lostVolumeSweepInterval.
type lostVolumeSweeper struct {
	r *TServerReconciler
}

// Start implements manager.Runnable.
func (s *lostVolumeSweeper) Start(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.r.nodeGoing:
		case <-timer.C:
		}
		next, err := s.r.sweepLostVolumes(ctx)
		if err != nil {
			logf.FromContext(ctx).Error(err, "Failed to look for volumes on lost nodes")
			next = waitInterval
		}
		if next == 0 {
			next = lostVolumeSweepInterval
		}
		timer.Reset(next)
	}
}

// nodeGone asks the lostVolumeSweeper to look again, without waiting.
func (r *TServerReconciler) nodeGone() {
	select {
	case r.nodeGoing <- struct{}{}:
	default:
	}
}

// sweepLostVolumes deletes the node-local volumes no claim is bound to on nodes that are gone,
// and says how soon to look again for those whose node is within its grace (0: no such node).
func (r *TServerReconciler) sweepLostVolumes(ctx context.Context) (time.Duration, error) {
	pvs := &corev1.PersistentVolumeList{}
	if err := r.APIReader.List(ctx, pvs, client.HasLabels{tarsv1beta1.LabelLocalVolume}); err != nil {
		return 0, err
	}
	var next time.Duration
	for i := range pvs.Items {
		pv := &pvs.Items[i]
		if !sweepable(pv) {
			continue
		}
		why, retry, err := r.volumeNotGone(ctx, pv)
		if err != nil {
			return 0, err
		}
		if why != "" {
			if retry > 0 && (next == 0 || retry < next) {
				next = max(retry, time.Second)
			}
			continue
		}
		if err := r.deleteLostVolume(ctx, pv); err != nil {
			return 0, err
		}
	}
	return next, nil
}

// sweepable says whether the sweeper may delete pv once its node is gone: a node-local volume
// no claim is bound to, not Retain unless freeReplica made it so.
func sweepable(pv *corev1.PersistentVolume) bool {
	switch {
	case volumeHostname(pv) == "", !pv.DeletionTimestamp.IsZero(),
		pv.Status.Phase == corev1.VolumeBound, pv.Status.Phase == corev1.VolumePending:
		return false
	case pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimRetain:
		return pv.Annotations[tarsv1beta1.AnnotationFreedFromNode] != ""
	}
	return true
}

// deleteLostVolume deletes pv, which no claim holds and whose node volumeNotGone has just found
// gone, from the cache and the API server, after reading it afresh: it must still be sweepable.
func (r *TServerReconciler) deleteLostVolume(ctx context.Context, pv *corev1.PersistentVolume) error {
	hostname := volumeHostname(pv)
	log := logf.FromContext(ctx).WithValues("pv", pv.Name, "hostname", hostname)
	fresh := &corev1.PersistentVolume{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(pv), fresh); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !sweepable(fresh) {
		return nil
	}
	if err := r.deleteStrandedVolume(ctx, fresh, hostname); err != nil {
		if apierrors.IsConflict(err) {
			return nil // changed meanwhile: the next sweep looks again
		}
		return err
	}
	log.Info("Deleted a volume that no claim holds on a lost node", "path", volumePath(fresh), "phase", fresh.Status.Phase)
	r.Recorder.Eventf(fresh, nil, corev1.EventTypeWarning, "DeletedLostVolume", "Delete",
		"Deleted volume %s (%s): no claim holds it and its node (hostname %s) is gone; "+
			"its directory %s stays on that node's disk",
		fresh.Name, fresh.Status.Phase, hostname, volumePath(fresh))
	lostVolumesDeleted.Inc()
	return nil
}
