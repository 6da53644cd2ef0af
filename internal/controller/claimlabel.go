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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// ClaimLabelReconciler keeps the label tars.io/SelectedNode of node-local claims equal to the
// node the scheduler picked for their pods, where the MutatingAdmissionPolicy of
// config/storageclass does not (a cluster without MutatingAdmissionPolicy, or a claim written
// before it was installed). Node agents watch only the claims labelled with their node.
type ClaimLabelReconciler struct {
	client.Client
}

// Reconcile labels one claim.
func (r *ClaimLabelReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := r.Get(ctx, req.NamespacedName, pvc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	want, ok := selectedNodeLabel(pvc)
	if ok {
		return ctrl.Result{}, nil
	}
	patch := client.MergeFromWithOptions(pvc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if want == "" {
		delete(pvc.Labels, tarsv1beta1.LabelSelectedNode)
	} else {
		pvc.Labels[tarsv1beta1.LabelSelectedNode] = want
	}
	if err := r.Patch(ctx, pvc, patch); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil // changed meanwhile: that change brings it back
		}
		return ctrl.Result{}, err
	}
	logf.FromContext(ctx).V(1).Info("Labelled claim with the node of its pod", "node", want)
	return ctrl.Result{}, nil
}

// selectedNodeLabel is the tars.io/SelectedNode label a node-local claim should have ("" for
// none), and whether it has it. A bound claim without the scheduler's selected-node keeps the
// label it has.
func selectedNodeLabel(pvc *corev1.PersistentVolumeClaim) (want string, ok bool) {
	if _, local := pvc.Labels[tarsv1beta1.LabelLocalVolume]; !local {
		return "", true // not a node-local claim
	}
	node := pvc.Annotations[volumehelpers.AnnSelectedNode]
	have, labelled := pvc.Labels[tarsv1beta1.LabelSelectedNode]
	if node == "" && pvc.Spec.VolumeName != "" {
		// Bound without the scheduler's mark (to a volume made beforehand): the agent of the
		// volume's node labels it, to keep its directory.
		return have, true
	}
	want = tarsv1beta1.SelectedNodeLabelValue(node)
	return want, want == have && (want != "" || !labelled)
}

// SetupWithManager watches the claims of TServers whose label is out of step.
func (r *ClaimLabelReconciler) SetupWithManager(mgr ctrl.Manager) error {
	outOfStep := func(obj client.Object) bool {
		pvc, isClaim := obj.(*corev1.PersistentVolumeClaim)
		if !isClaim {
			return false
		}
		_, ok := selectedNodeLabel(pvc)
		return !ok
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.PersistentVolumeClaim{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc:  func(e event.CreateEvent) bool { return outOfStep(e.Object) },
			UpdateFunc:  func(e event.UpdateEvent) bool { return outOfStep(e.ObjectNew) },
			DeleteFunc:  func(event.DeleteEvent) bool { return false },
			GenericFunc: func(e event.GenericEvent) bool { return outOfStep(e.Object) },
		})).
		Named("claimlabel").
		Complete(r)
}
