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
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// volumePoll is how often the controller looks again while volumes for new replicas are being
// provisioned.
const volumePoll = 500 * time.Millisecond

// admitReplicas is how many replicas the StatefulSet may have now, from current towards desired.
//
// The StatefulSet controller makes a pod's claims and the pod together, so without this the
// scheduler would try the pod before any node-local volume exists, find none, and back it off
// for up to ten seconds while the agents provision. Instead the controller makes the claims of
// the new replicas itself, exactly as the StatefulSet controller would (which then adopts them
// by name), and raises the replicas once enough volumes wait for them; or after VolumeWait,
// so that a server no node can hold still gets pods that say why they cannot be scheduled.
func (r *TServerReconciler) admitReplicas(ctx context.Context, ts *tarsv1beta1.TServer, current, desired int32,
	o *observed) (int32, error) {
	if r.VolumeWait <= 0 || desired <= current {
		return desired, nil
	}
	var local []corev1.PersistentVolumeClaim
	for _, t := range buildClaimTemplates(ts) {
		if _, ok := t.Labels[tarsv1beta1.LabelLocalVolume]; ok {
			local = append(local, t)
		}
	}
	if len(local) == 0 {
		return desired, nil
	}

	var oldestPending time.Time
	ready := true
	for _, t := range local {
		pending := 0
		for i := current; i < desired; i++ {
			pvc, err := r.ensureClaim(ctx, ts, t, i)
			if err != nil {
				return current, err
			}
			if pvc.Spec.VolumeName != "" {
				continue
			}
			pending++
			if created := pvc.CreationTimestamp.Time; oldestPending.IsZero() || created.Before(oldestPending) {
				oldestPending = created
			}
		}
		available, err := r.availableVolumes(ctx, t.Labels)
		if err != nil {
			return current, err
		}
		ready = ready && available >= pending
	}
	switch {
	case ready:
		return desired, nil
	case !oldestPending.IsZero() && time.Since(oldestPending) > r.VolumeWait:
		msg := fmt.Sprintf("node-local volumes for replicas %d to %d are not all there after %s; starting the pods "+
			"anyway (are there enough nodes labelled %s, each with an agent?)", current, desired-1, r.VolumeWait,
			tarsv1beta1.LabelSupportLocalVolume)
		logf.FromContext(ctx).Info("Starting pods without waiting further for volumes", "from", current, "to", desired)
		r.Recorder.Eventf(ts, nil, corev1.EventTypeWarning, "VolumesNotReady", "Scale", msg)
		return desired, nil
	}
	o.waitingForVolumes = true
	return current, nil
}

// ensureClaim returns the claim of template t for ordinal i, making it if it does not exist.
func (r *TServerReconciler) ensureClaim(ctx context.Context, ts *tarsv1beta1.TServer, t corev1.PersistentVolumeClaim,
	i int32) (*corev1.PersistentVolumeClaim, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	key := client.ObjectKey{Namespace: ts.Namespace, Name: fmt.Sprintf("%s-%s-%d", t.Name, ts.Name, i)}
	err := r.Get(ctx, key, pvc)
	if err == nil || !apierrors.IsNotFound(err) {
		return pvc, err
	}
	pvc = &corev1.PersistentVolumeClaim{
		ObjectMeta: t.ObjectMeta,
		Spec:       *t.Spec.DeepCopy(),
	}
	pvc.Name, pvc.Namespace = key.Name, key.Namespace
	pvc.Labels = mergeLabels(t.Labels, podLabels(ts)) // as the StatefulSet controller labels them
	if err := r.Create(ctx, pvc); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	return pvc, nil
}

// availableVolumes counts the unclaimed volumes that match a claim template's labels and that
// are Available (the agent marks a new volume so at once): the scheduler considers no other.
func (r *TServerReconciler) availableVolumes(ctx context.Context, labels map[string]string) (int, error) {
	list := &corev1.PersistentVolumeList{}
	if err := r.List(ctx, list, client.MatchingLabels(labels)); err != nil {
		return 0, err
	}
	n := 0
	for _, pv := range list.Items {
		if pv.Status.Phase == corev1.VolumeAvailable && pv.Spec.ClaimRef == nil && pv.DeletionTimestamp.IsZero() {
			n++
		}
	}
	return n, nil
}
