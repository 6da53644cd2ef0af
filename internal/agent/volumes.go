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
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// VolumeReconciler cleans up this node's volumes: a released one with reclaim policy Delete
// loses its directory and then itself; an unbound one that no claim waits for is deleted after
// the grace period. A bound volume, and its directory, are never touched.
type VolumeReconciler struct {
	*Agent
}

// Reconcile handles one volume of this node.
func (r *VolumeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pv := &corev1.PersistentVolume{}
	if err := r.Get(ctx, req.NamespacedName, pv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.isOurVolume(pv) || !pv.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	switch pv.Status.Phase {
	case corev1.VolumeReleased:
		return ctrl.Result{}, r.reclaim(ctx, pv)
	case corev1.VolumeAvailable:
		return r.collect(ctx, pv)
	}
	return ctrl.Result{}, nil
}

// reclaim removes the directory of a released volume whose reclaim policy is Delete, then the
// volume. With Retain, nothing is touched: the data is the administrator's to keep.
func (r *VolumeReconciler) reclaim(ctx context.Context, pv *corev1.PersistentVolume) error {
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return nil
	}
	rel := r.relativePath(pv)
	// Never the directory of a volume still in use, even one that shares the path by mistake.
	sharing, err := r.pathInUse(ctx, pv)
	if err != nil || sharing != "" {
		if sharing != "" {
			agentErrors.WithLabelValues(reasonUnsafePath).Inc()
			r.Recorder.Eventf(pv, nil, corev1.EventTypeWarning, "CleanupRefused", "Delete",
				"Node %s keeps %s: volume %s uses the same directory", r.NodeName, localPath(pv), sharing)
		}
		return err
	}
	// The cache may lag: an administrator may just have cleared the claim to reuse the volume.
	// Only the directory of a volume that is still this released one goes.
	fresh := &corev1.PersistentVolume{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(pv), fresh); err != nil {
		return client.IgnoreNotFound(err)
	}
	if fresh.ResourceVersion != pv.ResourceVersion {
		return nil // its update brings us back
	}
	if err := r.Root.RemoveAll(rel); err != nil {
		agentErrors.WithLabelValues(reasonCleanup).Inc()
		r.Recorder.Eventf(pv, nil, corev1.EventTypeWarning, "CleanupFailed", "Delete",
			"Node %s cannot remove %s: %v", r.NodeName, localPath(pv), err)
		return err
	}
	// The preconditions make sure it is still the released volume whose directory went.
	err = r.Delete(ctx, pv, client.Preconditions{UID: &pv.UID, ResourceVersion: &pv.ResourceVersion})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // changed meanwhile; its update brings us back
	}
	if err != nil {
		return err
	}
	volumesDeleted.Inc()
	logf.FromContext(ctx).Info("Deleted released PersistentVolume and its directory", "pv", pv.Name, "path", localPath(pv))
	r.Recorder.Eventf(pv, nil, corev1.EventTypeNormal, "CleanedUp", "Delete",
		"Node %s removed directory %s and volume %s, released with reclaim policy Delete", r.NodeName, localPath(pv), pv.Name)
	return nil
}

// pathInUse names another volume of this node, not released, with the same directory.
func (r *VolumeReconciler) pathInUse(ctx context.Context, pv *corev1.PersistentVolume) (string, error) {
	list := &corev1.PersistentVolumeList{}
	if err := r.List(ctx, list); err != nil {
		return "", err
	}
	for _, other := range list.Items {
		if other.Name != pv.Name && other.Status.Phase != corev1.VolumeReleased && r.relativePath(&other) == r.relativePath(pv) {
			return other.Name, nil
		}
	}
	return "", nil
}

// collect deletes an unbound volume (the agent makes every volume bound to its claim: these are
// volumes made beforehand, by TarsK8S's agents say) once no claim of its group has waited for
// it for the grace period. The delete carries the volume's resourceVersion: if the scheduler has
// bound it meanwhile, the delete fails instead of taking a bound volume away. Its directory
// goes only if empty.
func (r *VolumeReconciler) collect(ctx context.Context, pv *corev1.PersistentVolume) (ctrl.Result, error) {
	if pv.Spec.ClaimRef != nil {
		return ctrl.Result{}, nil // being bound
	}
	g, ok := r.groupOfVolume(pv)
	if !ok {
		return ctrl.Result{}, nil
	}
	idle := pv.CreationTimestamp.Time
	if t := pv.Status.LastPhaseTransitionTime; t != nil && t.After(idle) {
		idle = t.Time
	}
	if wait := r.GCGracePeriod - time.Since(idle); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	// The scheduler binds an Available volume of a waiting claim's group on this node rather than
	// have a new one made. The claims of other nodes are not in the cache: ask the API server.
	waiting, err := r.groupWaits(ctx, g)
	if err != nil || waiting {
		return ctrl.Result{RequeueAfter: r.GCGracePeriod}, err
	}
	err = r.Delete(ctx, pv, client.Preconditions{UID: &pv.UID, ResourceVersion: &pv.ResourceVersion})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil // bound or changed meanwhile: its update brings us back
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	removed, err := r.Root.RemoveIfEmpty(r.relativePath(pv))
	if err != nil {
		agentErrors.WithLabelValues(reasonCleanup).Inc()
		logf.FromContext(ctx).Error(err, "Failed to remove the empty directory of a collected volume", "pv", pv.Name)
	}
	volumesGarbageCollected.Inc()
	logf.FromContext(ctx).Info("Deleted unneeded PersistentVolume", "pv", pv.Name, "directoryRemoved", removed)
	note := "kept its directory, which holds data"
	if removed {
		note = "removed its empty directory"
	}
	r.Recorder.Eventf(pv, nil, corev1.EventTypeNormal, "GarbageCollected", "Delete",
		"Node %s deleted volume %s: no claim waited for it for %s; %s", r.NodeName, pv.Name, r.GCGracePeriod, note)
	return ctrl.Result{}, nil
}

// groupWaits says whether a claim of group g waits for a volume.
func (r *VolumeReconciler) groupWaits(ctx context.Context, g group) (bool, error) {
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(g.namespace), client.MatchingLabels(g.labels())); err != nil {
		return false, err
	}
	return slices.ContainsFunc(list.Items, func(pvc corev1.PersistentVolumeClaim) bool { return r.waitsForVolume(&pvc) }), nil
}

// SetupWithManager watches this node's volumes and claims: a claim that binds or goes away may
// leave a volume of its group unneeded.
func (r *VolumeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.PersistentVolume{}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.volumeOfClaim)).
		Named("volume").
		Complete(r)
}

// volumeOfClaim maps a claim to the volume its group has on this node, if there is one.
func (r *VolumeReconciler) volumeOfClaim(ctx context.Context, obj client.Object) []reconcile.Request {
	g, ok := groupOf(obj.GetNamespace(), obj.GetLabels())
	if !ok {
		return nil
	}
	key := client.ObjectKey{Name: r.volumeName(g)}
	if err := r.Get(ctx, key, &corev1.PersistentVolume{}); err != nil {
		return nil // none here (this node's volumes are the only ones in the cache)
	}
	return []reconcile.Request{{NamespacedName: key}}
}
