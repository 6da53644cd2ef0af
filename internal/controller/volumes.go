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

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/sets"
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
// by name), and raises the replicas once enough nodes have a volume for each of a new
// replica's claims; or after VolumeWait, so that a server no node can hold still gets pods that
// say why they cannot be scheduled.
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

	claims, err := r.ensureClaims(ctx, ts, local, current, desired)
	if err != nil {
		return current, err
	}

	// A new replica's pod fits only a node that has a volume for each of its pending claims.
	var oldestPending time.Time
	waiting := 0              // new replicas with a claim still pending
	pendingTemplates := 0     // templates with a claim of a new replica still pending
	nodes := map[string]int{} // node -> how many of those templates it has an Available volume for
	for ti, t := range local {
		pending := 0
		for _, pvc := range claims[ti] {
			if pvc.Spec.VolumeName != "" {
				continue
			}
			pending++
			if created := pvc.CreationTimestamp.Time; oldestPending.IsZero() || created.Before(oldestPending) {
				oldestPending = created
			}
		}
		if pending == 0 {
			continue
		}
		waiting = max(waiting, pending)
		pendingTemplates++
		onNodes, err := r.availableVolumeNodes(ctx, t.Labels)
		if err != nil {
			return current, err
		}
		for node := range onNodes {
			nodes[node]++
		}
	}
	fit := 0
	for _, n := range nodes {
		if n == pendingTemplates {
			fit++
		}
	}
	ready := fit >= waiting
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

// ensureClaims returns, for each template, the claims of ordinals current to desired-1, making
// those that do not exist. They are made side by side: a rollout of many servers waits for them
// while the agents keep the API server busy provisioning.
func (r *TServerReconciler) ensureClaims(ctx context.Context, ts *tarsv1beta1.TServer, templates []corev1.PersistentVolumeClaim,
	current, desired int32) ([][]*corev1.PersistentVolumeClaim, error) {
	claims := make([][]*corev1.PersistentVolumeClaim, len(templates))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxParallelClaims)
	for ti, t := range templates {
		claims[ti] = make([]*corev1.PersistentVolumeClaim, desired-current)
		for i := current; i < desired; i++ {
			g.Go(func() error {
				pvc, err := r.ensureClaim(gctx, ts, t, i)
				claims[ti][i-current] = pvc
				return err
			})
		}
	}
	return claims, g.Wait()
}

// maxParallelClaims is how many claims one reconcile makes at once.
const maxParallelClaims = 8

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

// availableVolumeNodes are the nodes (kubernetes.io/hostname) with an unclaimed volume that
// matches a claim template's labels and is Available (the agent marks a new volume so at once):
// the scheduler considers no other.
func (r *TServerReconciler) availableVolumeNodes(ctx context.Context, labels map[string]string) (sets.Set[string], error) {
	list := &corev1.PersistentVolumeList{}
	if err := r.List(ctx, list, client.MatchingLabels(labels), client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	nodes := sets.New[string]()
	for _, pv := range list.Items {
		if pv.Status.Phase == corev1.VolumeAvailable && pv.Spec.ClaimRef == nil && pv.DeletionTimestamp.IsZero() {
			nodes.Insert(pv.Labels[corev1.LabelHostname])
		}
	}
	return nodes, nil
}
