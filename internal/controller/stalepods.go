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
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

// replacePodsWithoutClaims replaces the pods of the server's StatefulSet that lack the volume
// of one of its claim templates: pods it adopted from the StatefulSet it was made to replace,
// to add a claim template (a tLocalVolume mount added, host networking turned on). The
// StatefulSet controller cannot roll them: it adds the volume to the running pod, which the API
// server refuses (a pod's volumes are immutable), and goes no further. So the controller deletes
// them as a rolling update would, one at a time: a pod that is not ready at once, a ready one
// only while every other pod is ready and none is going; the StatefulSet controller then makes
// each again, with every claim. Readiness counts the replicas the StatefulSet keeps (not those
// a scale-down condemns, which it removes only once it gets past the stale pods) and pods it has
// yet to adopt. It looks only while the StatefulSet reports replicas not yet updated or a claim
// of its templates is not bound (an added template can leave the pod template, and so the
// revision, unchanged), as in every rollout: first at the cached pods (podOnlyClaims), and only
// when one of them lacks a claim at the pods read from the API server, which decide. A rollout of
// a thousand new servers would otherwise list their pods from the API server at every reconcile.
func (r *TServerReconciler) replacePodsWithoutClaims(ctx context.Context, ts *tarsv1beta1.TServer, o *observed) error {
	sts := o.statefulSet
	if sts == nil || sts.UID == "" || len(sts.Spec.VolumeClaimTemplates) == 0 ||
		sts.Status.ObservedGeneration == sts.Generation && sts.Status.UpdatedReplicas >= sts.Status.Replicas &&
			!slices.ContainsFunc(o.claims, func(pvc corev1.PersistentVolumeClaim) bool {
				return pvc.Status.Phase != corev1.ClaimBound && keptReplicaClaim(sts, pvc.Name)
			}) {
		return nil
	}
	cached := &corev1.PodList{}
	if err := r.List(ctx, cached, ofServer(ts)...); err != nil {
		return err
	}
	if !slices.ContainsFunc(cached.Items, func(pod corev1.Pod) bool { return lacksClaims(sts, &pod) }) {
		return nil
	}
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.InNamespace(ts.Namespace),
		client.MatchingLabels(expand.PodLabels(ts))); err != nil {
		return err
	}
	replicas := int(*sts.Spec.Replicas)
	var stale, unready []*corev1.Pod
	ready := map[int]bool{} // by ordinal, of the replicas kept that are not going
	going := false
	for i := range pods.Items {
		pod := &pods.Items[i]
		ordinal, ok := podOrdinal(pod.Name, sts.Name)
		owner := metav1.GetControllerOf(pod)
		if !ok || owner != nil && owner.UID != sts.UID {
			continue
		}
		kept := ordinal < replicas
		if !pod.DeletionTimestamp.IsZero() {
			going = going || kept
			continue
		}
		if kept {
			ready[ordinal] = podIsReady(pod)
		}
		if !lacksClaims(sts, pod) {
			continue // not adopted yet, or with every claim
		}
		stale = append(stale, pod)
		if !podIsReady(pod) {
			unready = append(unready, pod)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	o.waiting = true // the pods' replacement is not watched
	victims := unready
	if len(victims) == 0 && !going {
		// The lowest ordinal first: the StatefulSet controller stops at the first pod it fails
		// to update, so it makes no pod above that one (nor any a scale-up asks for) until it is
		// replaced. Every pod below it must be ready, and every other pod that exists.
		lowest := slices.MinFunc(stale, func(a, b *corev1.Pod) int {
			x, _ := podOrdinal(a.Name, sts.Name)
			y, _ := podOrdinal(b.Name, sts.Name)
			return x - y
		})
		first, _ := podOrdinal(lowest.Name, sts.Name)
		if readyBelow(ready, first) {
			victims = []*corev1.Pod{lowest}
		}
	}
	for _, pod := range victims {
		ordinal, _ := podOrdinal(pod.Name, sts.Name)
		missing := missingClaims(sts, pod, ordinal)
		err := r.Delete(ctx, pod, client.Preconditions{UID: &pod.UID, ResourceVersion: &pod.ResourceVersion})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			continue // gone or changed meanwhile: the next reconcile sees it as it is
		}
		if err != nil {
			return err
		}
		logf.FromContext(ctx).Info("Deleted a pod that lacks claims of the StatefulSet's templates", "pod", pod.Name,
			"claims", missing)
		r.Recorder.Eventf(ts, pod, corev1.EventTypeNormal, "ReplacingPod", "Delete",
			"Deleted pod %s, which lacks claim(s) %s of the new claim templates, for StatefulSet %s to make it again with them",
			pod.Name, strings.Join(missing, ", "), sts.Name)
	}
	return nil
}

// lacksClaims says whether pod is one of the StatefulSet's, adopted, not going, and lacks a claim
// of its templates.
func lacksClaims(sts *appsv1.StatefulSet, pod *corev1.Pod) bool {
	ordinal, ok := podOrdinal(pod.Name, sts.Name)
	owner := metav1.GetControllerOf(pod)
	return ok && owner != nil && owner.UID == sts.UID && pod.DeletionTimestamp.IsZero() &&
		len(missingClaims(sts, pod, ordinal)) > 0
}

// podOnlyClaims strips a cached pod to what lacksClaims reads (its name, owner, deletion and
// claims), so that the cache of a large fleet's pods stays small.
func podOnlyClaims(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID, ResourceVersion: pod.ResourceVersion,
		Labels: pod.Labels, OwnerReferences: pod.OwnerReferences, DeletionTimestamp: pod.DeletionTimestamp,
	}}
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			slim.Spec.Volumes = append(slim.Spec.Volumes, corev1.Volume{Name: v.Name,
				VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: v.PersistentVolumeClaim}})
		}
	}
	return slim, nil
}

// keptReplicaClaim says whether claim is one of the StatefulSet's templates for a replica it
// keeps (a scaled-down replica's claim may stay Pending for good).
func keptReplicaClaim(sts *appsv1.StatefulSet, claim string) bool {
	template, ordinal, ok := claimOrdinal(claim, sts.Name)
	return ok && ordinal < *sts.Spec.Replicas && slices.Contains(expand.ClaimTemplateNames(sts), template)
}

// missingClaims are the claims of the StatefulSet's templates that the pod of that ordinal does
// not mount, as the StatefulSet controller names them: <template>-<set>-<ordinal>.
func missingClaims(sts *appsv1.StatefulSet, pod *corev1.Pod, ordinal int) []string {
	var missing []string
	for _, t := range sts.Spec.VolumeClaimTemplates {
		claim := fmt.Sprintf("%s-%s-%d", t.Name, sts.Name, ordinal)
		if !slices.ContainsFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
			return v.Name == t.Name && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == claim
		}) {
			missing = append(missing, claim)
		}
	}
	return missing
}

// podOrdinal is the ordinal of a pod of the StatefulSet named set: <set>-<ordinal>.
func podOrdinal(pod, set string) (int, bool) {
	digits, ok := strings.CutPrefix(pod, set+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n < 0 || strconv.Itoa(n) != digits {
		return 0, false
	}
	return n, true
}

// readyBelow says whether there is a ready pod for every ordinal below first, and every pod
// counted is ready.
func readyBelow(ready map[int]bool, first int) bool {
	for ordinal := range first {
		if !ready[ordinal] {
			return false
		}
	}
	for _, r := range ready {
		if !r {
			return false
		}
	}
	return true
}

// podIsReady says whether the pod's Ready condition is true.
func podIsReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
