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
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

// ClaimReconciler provisions a volume for each pending tars claim whose pod the scheduler put on
// this node, and keeps the directory of each bound volume of this node as its claim says.
type ClaimReconciler struct {
	*Agent
}

// Reconcile handles one claim.
func (r *ClaimReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := r.Get(ctx, req.NamespacedName, pvc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !r.isOurClaim(pvc) || !pvc.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	if pvc.Spec.VolumeName == "" {
		return ctrl.Result{}, r.provision(ctx, pvc)
	}
	return r.keep(ctx, pvc)
}

// provision makes the directory, then the volume, of a pending claim whose pod the scheduler
// put on this node (volume.kubernetes.io/selected-node). The volume is bound to the claim from
// the start, as external provisioners do; the PV controller completes the binding.
//
// The node is judged for the pod, not the claim alone: a volume made for one claim pins the pod
// to this node, so none is made while another node-local claim of the pod could not have its
// volume here (its server's volume of this node serving another replica, say); the scheduler
// then looks for a node for the whole pod again.
func (r *ClaimReconciler) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if pvc.Annotations[volumehelpers.AnnSelectedNode] != r.NodeName {
		return nil // not scheduled yet, or on another node
	}
	log := logf.FromContext(ctx)
	g, _ := groupOf(pvc.Namespace, pvc.Labels)
	sc, err := r.storageClass(ctx)
	if err != nil {
		agentErrors.WithLabelValues(reasonCreateVolume).Inc()
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
			"Node %s cannot provision a volume: %v", r.NodeName, err)
		return client.IgnoreNotFound(err) // the class appearing brings the claim back
	}
	if sc.Provisioner != tarsv1beta1.Provisioner {
		// TarsK8S's class (kubernetes.io/no-provisioner) provisions nothing, and its scheduler
		// never selects a node; the controller reports such a class on the TServer.
		log.Info("StorageClass is not the operator's: not provisioning", "storageClass", sc.Name,
			"provisioner", sc.Provisioner)
		return nil
	}
	// The disks, and the pod's ties to this node, are judged once for the claim and the other
	// claims of its pod.
	pj := podJudgement{
		doubt:  sync.OnceValues(func() (string, error) { return r.diskInDoubt(ctx, "") }),
		claims: sync.OnceValues(func() ([]corev1.PersistentVolumeClaim, error) { return r.podClaims(ctx, pvc) }),
	}
	pj.tied = sync.OnceValues(func() (bool, error) { return r.podTiedHere(ctx, pj.claims) })
	v, err := r.assess(ctx, pvc, pj)
	if err != nil {
		return err
	}
	if v.refuse != nil {
		return r.reschedule(ctx, pvc, *v.refuse)
	}
	own, err := ownershipOf(pvc)
	if err != nil {
		agentErrors.WithLabelValues(reasonInvalidAnnotations).Inc()
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
			"Node %s cannot provision a volume: invalid ownership annotation: %v", r.NodeName, err)
		return nil // nothing changes until the claim does
	}
	if v.mine {
		return nil // made for this claim already; the PV controller binds them
	}
	refused, err := r.podRefused(ctx, pvc, pj)
	if err != nil {
		return err
	}
	if refused != nil {
		return r.reschedule(ctx, pvc, *refused)
	}
	switch {
	case v.bind:
		return r.bindExisting(ctx, pvc, v.existing)
	case v.existing != nil:
		return nil // on its way out: its deletion brings the claim back
	}

	r.dirChange.RLock() // until the volume is made
	defer r.dirChange.RUnlock()
	res, err := r.Root.Ensure(g.dir(), own)
	if err != nil {
		agentErrors.WithLabelValues(reasonDirectory).Inc()
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
			"Node %s cannot prepare directory %s: %v", r.NodeName, path.Join(r.HostRoot, g.dir()), err)
		return err
	}
	reclaim := reclaimPolicyOf(sc)
	if res.HeldData && reclaim == corev1.PersistentVolumeReclaimDelete && g.volume != tarsv1beta1.DelayBindVolumeName {
		// Data kept from an earlier volume of the group (retained, or left by TarsK8S): the class's
		// Delete would erase it with the next deletion of this claim.
		reclaim = corev1.PersistentVolumeReclaimRetain
	}
	pv := r.Volume(pvc, reclaim)
	if err := r.Create(ctx, pv); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Not in this node's cache yet: made by an earlier attempt, or a volume of that name
			// for another node, class or group.
			existing := &corev1.PersistentVolume{}
			if err := r.APIReader.Get(ctx, client.ObjectKey{Name: pv.Name}, existing); err != nil {
				return client.IgnoreNotFound(err)
			}
			switch v := r.judgeExisting(pvc, existing, g); {
			case v.refuse != nil:
				return r.reschedule(ctx, pvc, *v.refuse)
			case v.bind:
				return r.bindExisting(ctx, pvc, existing)
			}
			return nil
		}
		agentErrors.WithLabelValues(reasonCreateVolume).Inc()
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
			"Node %s cannot create PersistentVolume %s: %v", r.NodeName, pv.Name, err)
		return err
	}
	r.markBound(ctx, pv)
	how := "created"
	if !res.Created {
		how = "adopted the existing directory"
	}
	if reclaim != reclaimPolicyOf(sc) {
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeNormal, "AdoptedExistingData", "Provision",
			"Node %s gave this claim the directory %s, which already held data (of an earlier volume of this server); "+
				"volume %s keeps it with reclaim policy Retain, so deleting the claim never erases it",
			r.NodeName, pv.Spec.Local.Path, pv.Name)
	}
	// No event: it would cost an API write per volume and say nothing the volume does not.
	// Failures are events.
	volumesProvisioned.Inc()
	log.Info("Provisioned PersistentVolume", "pv", pv.Name, "path", pv.Spec.Local.Path, "directory", how,
		"ownership", own.String())
	return nil
}

// refusal is why this node cannot give a claim a volume, with the reason it counts under in
// tserver_agent_errors_total ("" for none).
type refusal struct {
	why, reason string
}

func refuse(reason, format string, args ...any) *refusal {
	return &refusal{why: fmt.Sprintf(format, args...), reason: reason}
}

// verdict is what this node can do for a pending claim scheduled on it: refuse it, bind it the
// volume of its group that exists here, leave it to the PV controller (the volume is made for it
// already), wait for that volume to go (it will, by itself: released for its cleanup, say), or,
// with no volume of its group here, make one.
type verdict struct {
	refuse   *refusal
	existing *corev1.PersistentVolume
	bind     bool
	mine     bool
}

// podJudgement is what provisioning judges once for a claim and the other claims of its pod.
type podJudgement struct {
	// doubt says why the node's disks cannot be trusted, if so (diskInDoubt).
	doubt func() (string, error)
	// claims are the pod's claims, read from the API server (podClaims).
	claims func() ([]corev1.PersistentVolumeClaim, error)
	// tied says whether the pod has a volume or data here (podTiedHere).
	tied func() (bool, error)
}

// assess judges whether this node can give pending claim pvc a volume, with what pj judged of
// the node and the pod. It changes nothing, so it serves for the other claims of pvc's pod as
// well as for pvc.
func (r *ClaimReconciler) assess(ctx context.Context, pvc *corev1.PersistentVolumeClaim,
	pj podJudgement) (verdict, error) {
	g, _ := groupOf(pvc.Namespace, pvc.Labels)
	node, err := r.node(ctx)
	if err != nil {
		return verdict{}, err
	}
	if !supportsLocalVolumes(node) {
		// delay-bind volumes hold no data and may live anywhere; but only those of a TServer's
		// own template, or any claim with that label could store data on such a node.
		why, err := r.notDelayBind(ctx, pvc, g)
		if err != nil {
			return verdict{}, err
		}
		if why != "" {
			return verdict{refuse: refuse("", "the node is not labelled %s, and %s",
				tarsv1beta1.LabelSupportLocalVolume, why)}, nil
		}
	}
	existing := &corev1.PersistentVolume{}
	err = r.Get(ctx, client.ObjectKey{Name: r.volumeName(g)}, existing)
	switch {
	case err == nil:
		return r.judgeExisting(pvc, existing, g), nil
	case !apierrors.IsNotFound(err):
		return verdict{}, err
	}
	why, err := r.space.refusal(ctx, g, pj.tied)
	if err != nil {
		return verdict{}, err
	}
	if why != "" {
		return verdict{refuse: refuse(reasonDiskFull, "%s", why)}, nil
	}
	if g.volume != tarsv1beta1.DelayBindVolumeName {
		why, err := pj.doubt()
		if err != nil {
			return verdict{}, err
		}
		if why != "" {
			return verdict{refuse: refuse("", "%s", why)}, nil
		}
	}
	return verdict{}, nil
}

// judgeExisting judges a volume that already has the name the claim's group gets on this node:
// it must become the claim's. An unused one of its group is bound to it; one that this node
// cannot give the claim refuses it.
func (r *ClaimReconciler) judgeExisting(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume,
	g group) verdict {
	ref := pv.Spec.ClaimRef
	released := pv.Status.Phase == corev1.VolumeReleased
	// A volume still naming an earlier claim of this name (gone: the name is this claim's) is
	// released as soon as the PV controller sees it.
	earlier := ref != nil && ref.UID != pvc.UID && ref.Namespace == pvc.Namespace && ref.Name == pvc.Name
	v := verdict{existing: pv}
	switch {
	case !r.ofGroup(pv, g):
		v.refuse = refuse(reasonCollision, "PersistentVolume %s already exists for something else "+
			"(path %v, labels %v); it is left alone", pv.Name, localPath(pv), pv.Labels)
	case (released || earlier) && pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete:
		v.refuse = refuse(reasonRetained, "volume %s keeps the retained data of an earlier claim in %s. "+
			"To give that data to this claim, make the volume available again "+
			"(kubectl patch pv %s --type=json -p '[{\"op\":\"remove\",\"path\":\"/spec/claimRef\"}]'): "+
			"it is then bound to the next claim of its server scheduled here, and keeps reclaim policy Retain",
			pv.Name, localPath(pv), pv.Name)
	case ref != nil && ref.UID == pvc.UID:
		v.mine = true
	case ref == nil && pv.DeletionTimestamp.IsZero() &&
		(pv.Status.Phase == corev1.VolumeAvailable || pv.Status.Phase == corev1.VolumePending):
		if r.dataDirectoryMissing(pv) {
			v.refuse = refuse("", "the directory %s of its volume %s is missing", localPath(pv), pv.Name)
		}
		v.bind = v.refuse == nil
	case released && pv.DeletionTimestamp.IsZero() && r.cleanupRefused(pv.Name) != "":
		v.refuse = refuse("", "released volume %s of this server is in the way, and its cleanup was refused: %s",
			pv.Name, r.cleanupRefused(pv.Name))
	case released && pv.DeletionTimestamp.IsZero() && r.cleanupFailed(pv.Name) != "":
		v.refuse = refuse("", "released volume %s of this server is in the way, and its cleanup failed: %s",
			pv.Name, r.cleanupFailed(pv.Name))
	case released, earlier, ref == nil && !pv.DeletionTimestamp.IsZero():
		// On its way out by itself: cleaned up (reclaim policy Delete), or deleted unbound. Its
		// deletion brings the claim back. A volume being deleted that another claim still holds
		// is not: it stays while that claim's pod uses it.
	case ref == nil:
		v.refuse = refuse("", "its volume %s of this server is %s and names no claim", pv.Name, pv.Status.Phase)
	default:
		v.refuse = refuse("", "its volume %s of this server already serves claim %s/%s: "+
			"each replica of a server needs a node of its own", pv.Name, ref.Namespace, ref.Name)
	}
	return v
}

// podFitsHere says, from this node's cache alone, whether every other claim of the server's
// pod is sure to get its volume here, whatever claims the pod has: the node may hold data
// volumes, no disk is in doubt, and no volume of this node bears a name one of the pod's claims
// could need (<namespace>-<any volume>-<app>-<server>-<this node's hash>) but the pod's own, of
// its group and path, under reclaim policy Delete, no cleanup refused: at worst on its way out.
// That spares the common case, a server's first replica on a node, the API server's list of
// its claims. A volume named so but not in the cache (made by hand without the labels the cache
// selects) is missed here as by the list's judgement.
func (r *ClaimReconciler) podFitsHere(ctx context.Context, g group, pod string, pj podJudgement) (bool, error) {
	node, err := r.node(ctx)
	if err != nil || !supportsLocalVolumes(node) {
		return false, err
	}
	if why, err := pj.doubt(); why != "" || err != nil {
		return false, err
	}
	if r.space.full(ctx) != (fullness{}) {
		return false, nil // the other claims' directories may have to be made: each is judged
	}
	// The name of volume "x" of the server here: any other volume's is the same around "x".
	prefix := g.namespace + "-"
	suffix := strings.TrimPrefix(r.volumeName(group{g.namespace, g.app, g.server, "x"}), prefix+"x")
	list := &corev1.PersistentVolumeList{}
	if err := r.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil { // read, never changed
		return false, err
	}
	for i := range list.Items {
		pv := &list.Items[i]
		volume, hasPrefix := strings.CutPrefix(pv.Name, prefix)
		volume, hasSuffix := strings.CutSuffix(volume, suffix)
		if !hasPrefix || !hasSuffix || volume == "" {
			continue // no name a claim of this server in this namespace could need here
		}
		ref := pv.Spec.ClaimRef
		podsOwn := r.ofGroup(pv, group{g.namespace, g.app, g.server, volume}) &&
			ref != nil && ref.Namespace == g.namespace && ref.Name == volume+"-"+pod &&
			pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete &&
			pv.Status.Phase != corev1.VolumeFailed && r.cleanupRefused(pv.Name) == "" && r.cleanupFailed(pv.Name) == ""
		if !podsOwn {
			return false, nil
		}
	}
	return true, nil
}

// ofGroup says whether pv is the volume of group g on this node: its labels, class, hostname
// and path are the group's.
func (r *ClaimReconciler) ofGroup(pv *corev1.PersistentVolume, g group) bool {
	labelled, _ := groupOf(g.namespace, pv.Labels)
	return labelled == g && pv.Spec.StorageClassName == r.StorageClassName &&
		pv.Labels[corev1.LabelHostname] == r.Hostname && r.relativePath(pv) == g.dir()
}

// dataDirectoryMissing says whether the directory of data volume pv is missing: its data, if any,
// is not where it should be (a disk not mounted?), and binding the volume now could give a claim
// an empty directory, and later the data under the wrong reclaim policy.
func (a *Agent) dataDirectoryMissing(pv *corev1.PersistentVolume) bool {
	_, err := a.Root.Ownership(a.relativePath(pv))
	return errors.Is(err, fs.ErrNotExist) && pv.Labels[tarsv1beta1.LabelLocalVolume] != tarsv1beta1.DelayBindVolumeName
}

// podRefused judges this node for the other pending node-local claims of pvc's pod, whether or
// not they name this node yet (the scheduler writes them one after the other) and whether or not
// the pod still exists (it comes back with the same claims): the refusal the first of them that
// this node cannot serve gets, or nil. The pod's claims are those of the same server named
// <their volume>-<pod>, as a StatefulSet names them, listed from the API server: the cache holds
// only the claims that name this node. A claim of no StatefulSet's naming is judged alone.
func (r *ClaimReconciler) podRefused(ctx context.Context, pvc *corev1.PersistentVolumeClaim,
	pj podJudgement) (*refusal, error) {
	g, _ := groupOf(pvc.Namespace, pvc.Labels)
	pod, ok := strings.CutPrefix(pvc.Name, g.volume+"-")
	if !ok {
		return nil, nil
	}
	if fit, err := r.podFitsHere(ctx, g, pod, pj); fit || err != nil {
		return nil, err
	}
	claims, err := pj.claims()
	if err != nil {
		return nil, err
	}
	for i := range claims {
		other := &claims[i]
		if other.UID == pvc.UID || !r.waitsForVolume(other) {
			continue // bound already (the scheduler chose the node for it), or going
		}
		v, err := r.assess(ctx, other, pj)
		if err != nil {
			return nil, err
		}
		if v.refuse != nil {
			// Counted once, under its own claim.
			return refuse("", "claim %s of the same pod %s cannot have its volume on this node: %s",
				other.Name, pod, v.refuse.why), nil
		}
	}
	return nil, nil
}

// podClaims are the claims of pvc's pod: its server's claims named <their volume>-<pod>, as a
// StatefulSet names them, listed from the API server (the cache holds only the claims that name
// this node); pvc alone when its name is of no StatefulSet's naming.
func (r *ClaimReconciler) podClaims(ctx context.Context,
	pvc *corev1.PersistentVolumeClaim) ([]corev1.PersistentVolumeClaim, error) {
	g, _ := groupOf(pvc.Namespace, pvc.Labels)
	pod, ok := strings.CutPrefix(pvc.Name, g.volume+"-")
	if !ok {
		return []corev1.PersistentVolumeClaim{*pvc}, nil
	}
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(pvc.Namespace), client.MatchingLabels{
		tarsv1beta1.LabelServerApp: g.app, tarsv1beta1.LabelServerName: g.server,
	}); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list.Items, func(c corev1.PersistentVolumeClaim) bool {
		cg, _ := groupOf(c.Namespace, c.Labels)
		return c.Name != cg.volume+"-"+pod
	}), nil
}

// podTiedHere says whether a pod, of podClaims, is tied to this node: a volume of this node is
// bound to one of its claims (it can run nowhere else), or the directory of one of its data
// claims' groups is here (its data, which volumes elsewhere would leave behind). A full disk
// refuses no claim of such a pod: that would only keep it down, or send it away from its data.
func (r *ClaimReconciler) podTiedHere(ctx context.Context,
	podClaims func() ([]corev1.PersistentVolumeClaim, error)) (bool, error) {
	claims, err := podClaims()
	if err != nil {
		return false, err
	}
	for i := range claims {
		c := &claims[i]
		pv := &corev1.PersistentVolume{}
		if c.Spec.VolumeName != "" && r.Get(ctx, client.ObjectKey{Name: c.Spec.VolumeName}, pv) == nil &&
			r.boundHere(pv) && pv.Spec.ClaimRef.UID == c.UID {
			return true, nil // the cache holds this node's volumes only
		}
		cg, grouped := groupOf(c.Namespace, c.Labels)
		if !grouped || cg.volume == tarsv1beta1.DelayBindVolumeName {
			continue
		}
		if _, err := r.Root.Ownership(cg.dir()); !errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
	}
	return false, nil
}

// markBound sets the phase of a volume the agent has just made, bound to its claim (a claimRef
// with the claim's uid), to Bound. That is the second of the PV controller's four steps of a
// binding (the volume's claimRef, its phase, the claim's volumeName, the claim's phase), which it
// skips for a volume already Bound; it binds one claim at a time, so the write is better made
// here, on every node at once. The claim's side stays the PV controller's. The update carries
// the create's resourceVersion: a volume changed meanwhile (the PV controller got there first,
// say) is left as it is, and a failure only leaves the write to the PV controller.
func (r *ClaimReconciler) markBound(ctx context.Context, pv *corev1.PersistentVolume) {
	pv.Status.Phase = corev1.VolumeBound
	if err := r.Status().Update(ctx, pv); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		logf.FromContext(ctx).Error(err, "Failed to mark a new PersistentVolume Bound; the PV controller will", "pv", pv.Name)
	}
}

// cleanupRefused says why the cleanup of a released volume was refused, or "".
func (r *ClaimReconciler) cleanupRefused(pv string) string {
	why, _ := r.refused.Load(pv)
	s, _ := why.(string)
	return s
}

// cleanupFailed says how the cleanups of a released volume fail, once they have been failing for
// the grace period, or "": a failure that passes (the API server busy for a moment) moves no
// claim off its node.
func (r *ClaimReconciler) cleanupFailed(pv string) string {
	f, ok := r.moveFailed.Load(pv)
	if !ok || time.Since(f.(cleanupFailure).since) < r.GCGracePeriod {
		return ""
	}
	return f.(cleanupFailure).err
}

// bindExisting gives the claim an unused volume of its group on this node (one TarsK8S made
// beforehand, say), as the scheduler binds a volume that exists. The patch carries the volume's
// resourceVersion, so a volume claimed or collected meanwhile is not taken.
func (r *ClaimReconciler) bindExisting(ctx context.Context, pvc *corev1.PersistentVolumeClaim,
	pv *corev1.PersistentVolume) error {
	bound, _, err := volumehelpers.GetBindVolumeToClaim(pv, pvc)
	if err != nil {
		return err
	}
	if r.dataDirectoryMissing(pv) { // again: the disk may have gone since the verdict
		return r.reschedule(ctx, pvc, refusal{why: fmt.Sprintf("the directory %s of its volume %s is missing",
			localPath(pv), pv.Name)})
	}
	dataVolume := pv.Labels[tarsv1beta1.LabelLocalVolume] != tarsv1beta1.DelayBindVolumeName
	held, err := r.Root.HoldsData(r.relativePath(pv))
	if err != nil {
		return err
	}
	retain := held && bound.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete && dataVolume
	if retain {
		// Whatever the volume says, data found in its directory is not the claim's to erase.
		bound.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if err := r.Patch(ctx, bound, client.MergeFromWithOptions(pv, client.MergeFromWithOptimisticLock{})); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // changed meanwhile: its update brings the claim back
		}
		return err
	}
	logf.FromContext(ctx).Info("Bound existing PersistentVolume to claim", "pv", pv.Name,
		"claim", client.ObjectKeyFromObject(pvc), "retain", retain)
	if retain {
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeNormal, "AdoptedExistingData", "Provision",
			"Node %s gave this claim volume %s, whose directory %s already held data; its reclaim policy is now Retain, "+
				"so deleting the claim never erases it", r.NodeName, pv.Name, localPath(pv))
	}
	return nil
}

// reschedule hands a claim whose pod was scheduled on this node back to the scheduler, as
// external provisioners do: without the selected-node annotation, the scheduler looks for a node
// for the pod again.
func (r *ClaimReconciler) reschedule(ctx context.Context, pvc *corev1.PersistentVolumeClaim, refused refusal) error {
	if refused.reason != "" {
		agentErrors.WithLabelValues(refused.reason).Inc()
	}
	why := refused.why
	r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
		"Node %s cannot provision a volume for this claim: %s; its pod is scheduled again", r.NodeName, why)
	patch := client.MergeFromWithOptions(pvc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	delete(pvc.Annotations, volumehelpers.AnnSelectedNode)
	// Said on the claim too, for the TServer's VolumesBound while it is pending.
	pvc.Annotations[tarsv1beta1.AnnotationProvisioningRefused] = fmt.Sprintf("node %s: %s", r.NodeName, why)
	if err := r.Patch(ctx, pvc, patch); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return err
	}
	logf.FromContext(ctx).Info("Handed claim back to the scheduler", "claim", client.ObjectKeyFromObject(pvc),
		"reason", why)
	return nil
}

func localPath(pv *corev1.PersistentVolume) string {
	if pv.Spec.Local == nil {
		return ""
	}
	return pv.Spec.Local.Path
}

// Volume is the PersistentVolume the agent of this node makes for claim pvc, bound to it. It is
// exported so that `make bench` pre-creates exactly what the agent would.
func (c *Config) Volume(pvc *corev1.PersistentVolumeClaim,
	reclaim corev1.PersistentVolumeReclaimPolicy) *corev1.PersistentVolume {
	g, _ := groupOf(pvc.Namespace, pvc.Labels)
	labels := g.labels()
	labels[corev1.LabelHostname] = c.Hostname
	capacity := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if capacity.IsZero() {
		capacity = resource.MustParse("1G")
	}
	accessModes := pvc.Spec.AccessModes
	if len(accessModes) == 0 {
		accessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        c.volumeName(g),
			Labels:      labels,
			Annotations: map[string]string{volumehelpers.AnnDynamicallyProvisioned: "tserver-agent-" + c.NodeName},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: capacity},
			AccessModes: accessModes,
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				Local: &corev1.LocalVolumeSource{Path: path.Join(c.HostRoot, g.dir())},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{c.Hostname},
				}}}},
			}},
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion,
			},
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              c.StorageClassName,
			VolumeMode:                    new(corev1.PersistentVolumeFilesystem),
		},
	}
}

// keep sets the directory of a bound volume of this node to its claim's ownership, and looks
// again after ResyncPeriod: nothing reports a chmod behind the agent's back. A data volume's
// directory is never made anew: missing, it is reported (missingDirectory) until it is back.
func (r *ClaimReconciler) keep(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (ctrl.Result, error) {
	pv := &corev1.PersistentVolume{}
	if err := r.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // not a volume of this node
	}
	rel := r.relativePath(pv)
	// Only a bound volume: a released or departing one's directory is being removed.
	if !r.boundHere(pv) || pv.Spec.ClaimRef.UID != pvc.UID {
		return ctrl.Result{}, nil
	}
	// The claim's group must be the volume's: a claim of another group (bound by hand, or
	// labelled delay-bind) must neither give the directory its ownership nor have it made anew.
	claimGroup, _ := groupOf(pvc.Namespace, pvc.Labels)
	volumeGroup, _ := groupOf(pvc.Namespace, pv.Labels)
	if claimGroup != volumeGroup {
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "OwnershipNotApplied", "Repair",
			"Claim is bound to volume %s of another server or volume (labels %v); its directory %s is left as it is",
			pv.Name, pv.Labels, localPath(pv))
		return ctrl.Result{}, nil
	}
	delayBind := volumeGroup.volume == tarsv1beta1.DelayBindVolumeName
	own, err := ownershipOf(pvc)
	if err != nil {
		agentErrors.WithLabelValues(reasonInvalidAnnotations).Inc()
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "OwnershipNotApplied", "Repair",
			"Node %s cannot apply the claim's ownership: invalid annotation: %v", r.NodeName, err)
		if _, err := r.Root.Ownership(rel); errors.Is(err, fs.ErrNotExist) && !delayBind && !r.restoreAside(ctx, pv) {
			return ctrl.Result{RequeueAfter: r.ResyncPeriod}, r.missingDirectory(ctx, pvc, pv)
		}
		return ctrl.Result{RequeueAfter: r.ResyncPeriod}, nil
	}
	if g, ok := r.groupOfVolume(pv); ok && g.namespace != pvc.Namespace {
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "CrossNamespaceVolume", "Bind",
			"Claim is bound to volume %s, made for namespace %s (directory %s): the same app and server run in both "+
				"namespaces, and claims match volumes by app, server and volume name; give them different names",
			pv.Name, g.namespace, localPath(pv))
	}
	var res hostfs.Result
	if delayBind {
		res, err = r.Root.Ensure(rel, own) // holds nothing: made anew if need be
	} else {
		res, err = r.Root.Repair(rel, own)
		if errors.Is(err, hostfs.ErrMissing) && r.restoreAside(ctx, pv) {
			res, err = r.Root.Repair(rel, own)
		}
	}
	if errors.Is(err, hostfs.ErrMissing) {
		return ctrl.Result{RequeueAfter: r.ResyncPeriod}, r.missingDirectory(ctx, pvc, pv)
	}
	if err != nil {
		reason := reasonDirectory
		if !errors.Is(err, hostfs.ErrNeedsRoot) && !errors.Is(err, hostfs.ErrNotDirectory) {
			reason = reasonUnsafePath
		}
		agentErrors.WithLabelValues(reason).Inc()
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "OwnershipNotApplied", "Repair",
			"Node %s cannot set %s on %s: %v", r.NodeName, own, localPath(pv), err)
		return ctrl.Result{}, err
	}
	if err := r.directoryBack(ctx, pvc, pv); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.refusalOver(ctx, pvc); err != nil {
		return ctrl.Result{}, err
	}
	switch {
	case res.Created:
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeNormal, "DirectoryRecreated", "Repair",
			"The directory %s of delay-bind volume %s on node %s was missing; made it anew (it holds no data)",
			localPath(pv), pv.Name, r.NodeName)
	case res.Repaired:
		ownershipRepairs.Inc()
		logf.FromContext(ctx).Info("Repaired directory ownership", "pv", pv.Name,
			"was", res.Was.String(), "now", own.String())
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeNormal, "OwnershipRepaired", "Repair",
			"Set directory %s on node %s from %s to %s", localPath(pv), r.NodeName, res.Was, own)
	}
	return ctrl.Result{RequeueAfter: r.ResyncPeriod}, nil
}

// restoreAside moves back the directory of a volume that a cleanup moved aside and a restart
// interrupted before the volume's delete, which did not happen and must not (the volume is bound,
// made available again, or its directory is another volume's too): it is that volume's
// directory. It says whether it did; a directory already at the path is never replaced.
func (a *Agent) restoreAside(ctx context.Context, pv *corev1.PersistentVolume) bool {
	aside := a.asideOf(pv)
	if _, busy := a.removing.Load(aside); busy {
		return false // a cleanup under way has it aside: it moves it back itself, or removes it
	}
	if err := a.Root.Rename(aside, a.relativePath(pv)); err != nil {
		return false
	}
	logf.FromContext(ctx).Info("Moved back the directory of a volume moved aside by an interrupted cleanup",
		"pv", pv.Name, "phase", pv.Status.Phase)
	return true
}

// missingDirectory reports a bound data volume whose directory is gone, as the kubelet refuses to
// mount a local volume whose path does not exist: an empty directory in its place would let the
// service start without its data, and hide the data once the disk is back. It says so on the
// claim (annotation tars.io/VolumeProblem, which the controller shows on the TServer), in Warning
// events on the claim and the volume, and in a metric; the directory is left to the administrator
// (mount the disk) or the loss to be accepted (delete the claim and the volume: the replica gets
// a new volume; a released volume whose directory is missing is kept, see moveAside).
func (r *ClaimReconciler) missingDirectory(ctx context.Context, pvc *corev1.PersistentVolumeClaim,
	pv *corev1.PersistentVolume) error {
	volumeDirectoryMissing.WithLabelValues(pv.Name, pvc.Namespace, pvc.Name).Set(1)
	msg := fmt.Sprintf("directory %s of volume %s is missing on node %s (a data disk not mounted, or replaced?); "+
		"it is not recreated empty. Mount the disk, or delete the claim and the volume to accept the loss "+
		"(the replica then gets a new volume)",
		localPath(pv), pv.Name, r.NodeName)
	if pvc.Annotations[tarsv1beta1.AnnotationVolumeProblem] == msg {
		return nil // reported already
	}
	agentErrors.WithLabelValues(reasonMissingDirectory).Inc()
	logf.FromContext(ctx).Info("Directory of a bound PersistentVolume is missing; not recreating it",
		"pv", pv.Name, "path", localPath(pv))
	r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "VolumeDirectoryMissing", "Repair", "%s", msg)
	r.Recorder.Eventf(pv, pvc, corev1.EventTypeWarning, "VolumeDirectoryMissing", "Repair", "%s", msg)
	patch := client.MergeFrom(pvc.DeepCopy())
	if pvc.Annotations == nil {
		pvc.Annotations = map[string]string{}
	}
	pvc.Annotations[tarsv1beta1.AnnotationVolumeProblem] = msg
	return client.IgnoreNotFound(r.Patch(ctx, pvc, patch))
}

// directoryBack clears what missingDirectory reported once the directory is there again.
func (r *ClaimReconciler) directoryBack(ctx context.Context, pvc *corev1.PersistentVolumeClaim,
	pv *corev1.PersistentVolume) error {
	volumeDirectoryMissing.DeleteLabelValues(pv.Name, pvc.Namespace, pvc.Name)
	if _, reported := pvc.Annotations[tarsv1beta1.AnnotationVolumeProblem]; !reported {
		return nil
	}
	patch := client.MergeFrom(pvc.DeepCopy())
	delete(pvc.Annotations, tarsv1beta1.AnnotationVolumeProblem)
	if err := r.Patch(ctx, pvc, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	logf.FromContext(ctx).Info("Directory of a bound PersistentVolume is back", "pv", pv.Name, "path", localPath(pv))
	r.Recorder.Eventf(pvc, pv, corev1.EventTypeNormal, "VolumeDirectoryRestored", "Repair",
		"Directory %s of volume %s is present again on node %s", localPath(pv), pv.Name, r.NodeName)
	return nil
}

// refusalOver removes from a claim bound to a volume of this node what an agent said when it
// handed the claim back: it has its volume now.
func (r *ClaimReconciler) refusalOver(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	if _, refused := pvc.Annotations[tarsv1beta1.AnnotationProvisioningRefused]; !refused {
		return nil
	}
	patch := client.MergeFrom(pvc.DeepCopy())
	delete(pvc.Annotations, tarsv1beta1.AnnotationProvisioningRefused)
	return client.IgnoreNotFound(r.Patch(ctx, pvc, patch))
}

// notDelayBind says why a claim labelled as a delay-bind claim is not one a TServer's own
// delay-bind template made, or "" when it is: named delay-bind-<server>-<ordinal>, with the
// StatefulSet <server> of its namespace, controlled by a TServer, having a delay-bind template
// of the claim's labels. All read from the API server.
func (r *ClaimReconciler) notDelayBind(ctx context.Context, pvc *corev1.PersistentVolumeClaim,
	g group) (string, error) {
	if g.volume != tarsv1beta1.DelayBindVolumeName {
		return "the claim is not a delay-bind claim", nil
	}
	server := tarsv1beta1.ResourceName(g.app, g.server)
	ordinal, ok := strings.CutPrefix(pvc.Name, tarsv1beta1.DelayBindVolumeName+"-"+server+"-")
	if _, err := strconv.ParseUint(ordinal, 10, 31); !ok || err != nil {
		return fmt.Sprintf("claim %s is not one a StatefulSet %s makes from its delay-bind template", pvc.Name, server), nil
	}
	sts := &appsv1.StatefulSet{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: pvc.Namespace, Name: server}, sts)
	if apierrors.IsNotFound(err) {
		return fmt.Sprintf("there is no StatefulSet %s of a TServer for it", server), nil
	}
	if err != nil {
		return "", err
	}
	if n, _ := strconv.ParseInt(ordinal, 10, 32); sts.Spec.Replicas != nil && int32(n) >= *sts.Spec.Replicas {
		return fmt.Sprintf("StatefulSet %s has %d replica(s), and claim %s is of replica %s", server, *sts.Spec.Replicas,
			pvc.Name, ordinal), nil
	}
	owner := metav1.GetControllerOf(sts)
	fromTServer := owner != nil && owner.Kind == "TServer" &&
		strings.HasPrefix(owner.APIVersion, tarsv1beta1.GroupVersion.Group+"/")
	if !fromTServer || !slices.ContainsFunc(sts.Spec.VolumeClaimTemplates, func(t corev1.PersistentVolumeClaim) bool {
		_, sameGroup := groupOf(pvc.Namespace, t.Labels)
		return t.Name == tarsv1beta1.DelayBindVolumeName && sameGroup && maps.Equal(t.Labels, g.labels())
	}) {
		return fmt.Sprintf("StatefulSet %s is not a TServer's with a delay-bind claim template", server), nil
	}
	return "", nil
}

// maxConcurrentClaims is how many claims an agent handles at once.
const maxConcurrentClaims = 4

// SetupWithManager watches this node's claims, its volumes (a deleted one may be owed to a
// pending claim again), the node (a new tars.io/SupportLocalVolume label makes it eligible) and
// the storage class (which must exist, with the operator's provisioner).
func (r *ClaimReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.PersistentVolumeClaim{},
		waitingGroupIndex, r.waitingGroup); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.PersistentVolumeClaim{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(e event.CreateEvent) bool { return r.concerns(e.Object) },
			UpdateFunc: func(e event.UpdateEvent) bool { return claimChanged(e) && r.concerns(e.ObjectNew) },
			DeleteFunc: func(event.DeleteEvent) bool { return false }, // nothing to do for a claim that is gone
		})).
		Watches(&corev1.PersistentVolume{}, handler.EnqueueRequestsFromMapFunc(r.claimsOfVolume)).
		// Only the node's labels say where volumes may go; its status changes with every heartbeat.
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.allPendingClaims),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		Watches(&storagev1.StorageClass{}, handler.EnqueueRequestsFromMapFunc(r.allPendingClaims)).
		WatchesRawSource(source.Channel(r.refusalStored, handler.EnqueueRequestsFromMapFunc(r.claimsOfVolume))).
		Named("claim").
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrentClaims}).
		Complete(r)
}

// concerns says whether this agent may have something to do for a claim: a pending one whose
// pod the scheduler put on this node, or one bound to a volume of this node. The cache holds
// this node's claims only (CacheOptions), except on a node whose name is no label value; this
// spares the reconciles of the others' there. A claim passed over is brought back by what
// concerns this node later: its volume appearing here, or a change of the claim.
func (r *ClaimReconciler) concerns(obj client.Object) bool {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || !r.isOurClaim(pvc) {
		return false
	}
	if pvc.Spec.VolumeName != "" {
		// This node's volumes are the only ones in the cache.
		return r.Get(context.Background(), client.ObjectKey{Name: pvc.Spec.VolumeName}, &corev1.PersistentVolume{}) == nil
	}
	return pvc.Annotations[volumehelpers.AnnSelectedNode] == r.NodeName
}

// claimChanged passes the updates of a claim that the agent acts on: its volume, labels,
// annotations or deletion; not its status, which the PV controller writes once more for every
// claim it binds, to every agent.
func claimChanged(e event.UpdateEvent) bool {
	old, okOld := e.ObjectOld.(*corev1.PersistentVolumeClaim)
	pvc, okNew := e.ObjectNew.(*corev1.PersistentVolumeClaim)
	if !okOld || !okNew {
		return true
	}
	return old.Spec.VolumeName != pvc.Spec.VolumeName || !maps.Equal(old.Labels, pvc.Labels) ||
		!maps.Equal(old.Annotations, pvc.Annotations) || !old.DeletionTimestamp.Equal(pvc.DeletionTimestamp)
}

// waitingGroupIndex indexes the cached claims waiting for a volume on this node by their group
// (waitingGroup), so that a volume's event finds the claims of its group without going through
// every claim of the node: at start, every volume of the node has one.
const waitingGroupIndex = "waitingGroup"

// waitingGroup is the index value of a claim whose pod the scheduler put on this node and that
// waits for a volume: its group's key; none for any other claim.
func (r *ClaimReconciler) waitingGroup(obj client.Object) []string {
	pvc, ok := obj.(*corev1.PersistentVolumeClaim)
	if !ok || !r.waitsForVolume(pvc) || pvc.Annotations[volumehelpers.AnnSelectedNode] != r.NodeName {
		return nil
	}
	g, _ := groupOf(pvc.Namespace, pvc.Labels) // a claim of ours has one
	return []string{g.key()}
}

// key names the group in an index: its namespace and label values, which hold no slash.
func (g group) key() string {
	return g.namespace + "/" + g.app + "/" + g.server + "/" + g.volume
}

// claimsOfVolume maps a volume to its claim and to the claims of its group waiting on this node.
func (r *ClaimReconciler) claimsOfVolume(ctx context.Context, obj client.Object) []reconcile.Request {
	pv := obj.(*corev1.PersistentVolume)
	var reqs []reconcile.Request
	if ref := pv.Spec.ClaimRef; ref != nil {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}})
	}
	if g, ok := r.groupOfVolume(pv); ok {
		for _, pvc := range r.waitingClaims(ctx, client.MatchingFields{waitingGroupIndex: g.key()}) {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pvc)})
		}
	}
	return reqs
}

// allPendingClaims maps this node or the storage class to every claim waiting on this node.
func (r *ClaimReconciler) allPendingClaims(ctx context.Context, _ client.Object) []reconcile.Request {
	claims := r.waitingClaims(ctx)
	reqs := make([]reconcile.Request, 0, len(claims))
	for i := range claims {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&claims[i])})
	}
	return reqs
}

// waitingClaims lists the cached claims whose pods were scheduled on this node and that wait
// for a volume, of those opts select. They come straight from the cache: read them, never change
// them.
func (r *ClaimReconciler) waitingClaims(ctx context.Context, opts ...client.ListOption) []corev1.PersistentVolumeClaim {
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.List(ctx, list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		logf.FromContext(ctx).Error(err, "Failed to list claims")
		return nil
	}
	return slices.DeleteFunc(list.Items, func(pvc corev1.PersistentVolumeClaim) bool {
		return r.waitingGroup(&pvc) == nil
	})
}
