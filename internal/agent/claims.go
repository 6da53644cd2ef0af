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
	"maps"
	"path"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/keymutex"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

// ClaimReconciler provisions a volume on this node for each pending tars claim the node may
// serve, and keeps the directory of each bound volume of this node as its claim says.
type ClaimReconciler struct {
	*Agent

	// groups serialises provisioning per group: the claims of one server's replicas arrive
	// together, and all but the first must find the volume the first made, not race to make it.
	groups keymutex.KeyMutex

	reclaim struct {
		sync.Mutex
		policy corev1.PersistentVolumeReclaimPolicy
		read   time.Time
	}
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

// provision creates the directory, then the volume, of a pending claim's group on this node.
func (r *ClaimReconciler) provision(ctx context.Context, pvc *corev1.PersistentVolumeClaim) error {
	log := logf.FromContext(ctx)
	g, _ := groupOf(pvc.Namespace, pvc.Labels)
	node, err := r.node(ctx)
	if err != nil {
		return err
	}
	if !mayProvision(node, g) {
		return nil
	}
	own, err := ownershipOf(pvc)
	if err != nil {
		agentErrors.WithLabelValues(reasonInvalidAnnotations).Inc()
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
			"Node %s cannot provision a volume: invalid ownership annotation: %v", r.NodeName, err)
		return nil // nothing changes until the claim does
	}

	name := r.volumeName(g)
	r.groups.LockKey(name)
	defer func() { _ = r.groups.UnlockKey(name) }()
	existing := &corev1.PersistentVolume{}
	err = r.Get(ctx, client.ObjectKey{Name: name}, existing)
	switch {
	case err == nil:
		return r.checkExisting(pvc, existing, g)
	case !apierrors.IsNotFound(err):
		return err
	}
	res, err := r.Root.Ensure(g.dir(), own)
	if err != nil {
		agentErrors.WithLabelValues(reasonDirectory).Inc()
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
			"Node %s cannot prepare directory %s: %v", r.NodeName, path.Join(r.HostRoot, g.dir()), err)
		return err
	}
	reclaim, err := r.reclaimPolicy(ctx)
	if err != nil {
		agentErrors.WithLabelValues(reasonCreateVolume).Inc()
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
			"Node %s cannot read StorageClass %s for the reclaim policy: %v", r.NodeName, r.StorageClassName, err)
		return err
	}
	pv := r.Volume(pvc, reclaim)
	if err := r.Create(ctx, pv); err != nil {
		if apierrors.IsAlreadyExists(err) {
			// Not in this node's cache: made by an earlier attempt the cache has not seen yet, or
			// a volume of that name for another node, class or group.
			if err := r.APIReader.Get(ctx, client.ObjectKey{Name: name}, existing); err != nil {
				return client.IgnoreNotFound(err)
			}
			return r.checkExisting(pvc, existing, g)
		}
		agentErrors.WithLabelValues(reasonCreateVolume).Inc()
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "ProvisioningFailed", "Provision",
			"Node %s cannot create PersistentVolume %s: %v", r.NodeName, name, err)
		return err
	}
	r.markAvailable(ctx, pv)
	r.awaitCache(ctx, pv)
	how := "created"
	if !res.Created {
		how = "adopted the existing directory"
	}
	// No event: every node with room provisions one for the claim's group, and a claim showing
	// one "Provisioned" per node (all but one of them volumes it will not use) tells its reader
	// nothing the PV list does not, at one API write per volume. Failures are events.
	volumesProvisioned.Inc()
	log.Info("Provisioned PersistentVolume", "pv", name, "path", pv.Spec.Local.Path, "directory", how, "ownership", own.String())
	return nil
}

// markAvailable writes the phase the PV controller gives a new volume no claim refers to
// (Available) at once: the scheduler only considers Available volumes, and the PV controller,
// with one client for every volume of the cluster, takes seconds to get through hundreds of new
// ones. Its own sync then finds nothing to write. The update carries the resourceVersion of the
// create, so a volume the PV controller or a binder has changed since is left to them.
func (r *ClaimReconciler) markAvailable(ctx context.Context, pv *corev1.PersistentVolume) {
	if pv.Spec.ClaimRef != nil || pv.Status.Phase != corev1.VolumePending {
		return
	}
	pv.Status.Phase = corev1.VolumeAvailable
	if err := r.Status().Update(ctx, pv); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		// Not needed for correctness: the PV controller marks the volume Available later.
		logf.FromContext(ctx).Info("Could not mark the new volume Available; the PV controller will",
			"pv", pv.Name, "error", err.Error())
	}
}

// cacheWait bounds how long provisioning waits for the cache to show a volume it made.
const cacheWait = 2 * time.Second

// awaitCache holds the group's lock until the cache shows the volume just made, so the next
// claim of the group finds it there instead of creating it again. Past cacheWait it gives up:
// a create then fails with AlreadyExists, which is handled.
func (r *ClaimReconciler) awaitCache(ctx context.Context, pv *corev1.PersistentVolume) {
	_ = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, cacheWait, true, func(ctx context.Context) (bool, error) {
		cached := &corev1.PersistentVolume{}
		err := r.Get(ctx, client.ObjectKeyFromObject(pv), cached)
		return err == nil && cached.UID == pv.UID, nil
	})
}

// checkExisting handles a volume that already has the name the claim's group gets on this node.
func (r *ClaimReconciler) checkExisting(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume, g group) error {
	other, _ := groupOf(pvc.Namespace, pv.Labels)
	sameGroup := other == g && pv.Spec.StorageClassName == r.StorageClassName &&
		pv.Labels[corev1.LabelHostname] == r.Hostname && r.relativePath(pv) == g.dir()
	switch {
	case !sameGroup:
		agentErrors.WithLabelValues(reasonCollision).Inc()
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "VolumeNameCollision", "Provision",
			"Node %s cannot provision: PersistentVolume %s already exists for something else (path %v, labels %v); "+
				"it is left alone", r.NodeName, pv.Name, localPath(pv), pv.Labels)
	case pv.Status.Phase == corev1.VolumeReleased && pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete:
		agentErrors.WithLabelValues(reasonRetained).Inc()
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "VolumeRetained", "Provision",
			"Node %s keeps the retained data of an earlier claim in volume %s; delete that volume to provision a new one here",
			r.NodeName, pv.Name)
	}
	return nil // already provisioned (or being cleaned up, which brings us back)
}

func localPath(pv *corev1.PersistentVolume) string {
	if pv.Spec.Local == nil {
		return ""
	}
	return pv.Spec.Local.Path
}

// reclaimPolicyTTL is how long the StorageClass's reclaim policy, immutable but for a class
// deleted and made again, is reused before it is read again.
const reclaimPolicyTTL = time.Minute

// reclaimPolicy is the StorageClass's; Delete if it has none.
func (r *ClaimReconciler) reclaimPolicy(ctx context.Context) (corev1.PersistentVolumeReclaimPolicy, error) {
	r.reclaim.Lock()
	defer r.reclaim.Unlock()
	if r.reclaim.policy != "" && time.Since(r.reclaim.read) < reclaimPolicyTTL {
		return r.reclaim.policy, nil
	}
	sc := &storagev1.StorageClass{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: r.StorageClassName}, sc); err != nil {
		return "", err
	}
	r.reclaim.policy, r.reclaim.read = corev1.PersistentVolumeReclaimDelete, time.Now()
	if sc.ReclaimPolicy != nil {
		r.reclaim.policy = *sc.ReclaimPolicy
	}
	return r.reclaim.policy, nil
}

// Volume is the PersistentVolume the agent of this node makes for the group of claim pvc. It is
// exported so that `make bench` pre-creates exactly what the agent would.
func (c *Config) Volume(pvc *corev1.PersistentVolumeClaim, reclaim corev1.PersistentVolumeReclaimPolicy) *corev1.PersistentVolume {
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
			Annotations: map[string]string{ProvisionedByAnnotation: "tserver-agent-" + c.NodeName},
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
			PersistentVolumeReclaimPolicy: reclaim,
			StorageClassName:              c.StorageClassName,
			VolumeMode:                    new(corev1.PersistentVolumeFilesystem),
		},
	}
}

// keep sets the directory of a bound volume of this node to its claim's ownership, and looks
// again after ResyncPeriod: nothing reports a chmod behind the agent's back.
func (r *ClaimReconciler) keep(ctx context.Context, pvc *corev1.PersistentVolumeClaim) (ctrl.Result, error) {
	pv := &corev1.PersistentVolume{}
	if err := r.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err) // not a volume of this node
	}
	rel := r.relativePath(pv)
	// Only a bound volume: a released or departing one's directory is being removed.
	if !r.isOurVolume(pv) || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID ||
		pv.Status.Phase != corev1.VolumeBound || !pv.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	own, err := ownershipOf(pvc)
	if err != nil {
		agentErrors.WithLabelValues(reasonInvalidAnnotations).Inc()
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "OwnershipNotApplied", "Repair",
			"Node %s cannot apply the claim's ownership: invalid annotation: %v", r.NodeName, err)
		return ctrl.Result{}, nil
	}
	if g, ok := r.groupOfVolume(pv); ok && g.namespace != pvc.Namespace {
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "CrossNamespaceVolume", "Bind",
			"Claim is bound to volume %s, made for namespace %s (directory %s): the same app and server run in both "+
				"namespaces, and claims match volumes by app, server and volume name; give them different names",
			pv.Name, g.namespace, localPath(pv))
	}
	res, err := r.Root.Ensure(rel, own)
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
	switch {
	case res.Created:
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeWarning, "DirectoryRecreated", "Repair",
			"The directory %s of bound volume %s on node %s was missing; recreated it empty with %s",
			localPath(pv), pv.Name, r.NodeName, own)
	case res.Repaired:
		ownershipRepairs.Inc()
		logf.FromContext(ctx).Info("Repaired directory ownership", "pv", pv.Name, "was", res.Was.String(), "now", own.String())
		r.Recorder.Eventf(pvc, pv, corev1.EventTypeNormal, "OwnershipRepaired", "Repair",
			"Set directory %s on node %s from %s to %s", localPath(pv), r.NodeName, res.Was, own)
	}
	return ctrl.Result{RequeueAfter: r.ResyncPeriod}, nil
}

// maxConcurrentClaims is how many claims an agent handles at once.
const maxConcurrentClaims = 4

// SetupWithManager watches claims, this node's volumes (a deleted one may be owed to a pending
// claim again) and this node (a new tars.io/SupportLocalVolume label makes it eligible).
func (r *ClaimReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.groups = keymutex.NewHashed(4 * maxConcurrentClaims)
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.PersistentVolumeClaim{}, builder.WithPredicates(predicate.Funcs{UpdateFunc: claimChanged})).
		Watches(&corev1.PersistentVolume{}, handler.EnqueueRequestsFromMapFunc(r.claimsOfVolume)).
		Watches(&corev1.Node{}, handler.EnqueueRequestsFromMapFunc(r.claimsOfNode)).
		Named("claim").
		// Claims of different groups are independent; those of one group take turns (groups).
		WithOptions(controller.Options{MaxConcurrentReconciles: maxConcurrentClaims}).
		Complete(r)
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

// claimsOfVolume maps a volume to its claim and to the pending claims of its group.
func (r *ClaimReconciler) claimsOfVolume(ctx context.Context, obj client.Object) []reconcile.Request {
	pv := obj.(*corev1.PersistentVolume)
	var reqs []reconcile.Request
	if ref := pv.Spec.ClaimRef; ref != nil {
		reqs = append(reqs, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}})
	}
	if g, ok := r.groupOfVolume(pv); ok {
		reqs = append(reqs, requestsFor(r.pendingClaims(ctx, &g))...)
	}
	return reqs
}

// claimsOfNode maps this node to every pending claim.
func (r *ClaimReconciler) claimsOfNode(ctx context.Context, _ client.Object) []reconcile.Request {
	return requestsFor(r.pendingClaims(ctx, nil))
}

func requestsFor(claims []corev1.PersistentVolumeClaim) []reconcile.Request {
	reqs := make([]reconcile.Request, 0, len(claims))
	for i := range claims {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&claims[i])})
	}
	return reqs
}

// pendingGroupIndex indexes the cached tars claims that wait for a volume by their group, so
// that finding a group's pending claims does not walk every claim of the cluster.
const pendingGroupIndex = "tars.pendingGroup"

// pendingGroupKey is a pending claim's pendingGroupIndex key.
func (a *Agent) pendingGroupKey(obj client.Object) []string {
	pvc := obj.(*corev1.PersistentVolumeClaim)
	if pvc.Spec.VolumeName != "" || !pvc.DeletionTimestamp.IsZero() || !a.isOurClaim(pvc) {
		return nil
	}
	g, _ := groupOf(pvc.Namespace, pvc.Labels)
	return []string{g.key()}
}

// pendingClaims lists the cached tars claims of group g that wait for a volume; every pending
// claim without g. They come straight from the cache: read them, never change them.
func (a *Agent) pendingClaims(ctx context.Context, g *group) []corev1.PersistentVolumeClaim {
	list := &corev1.PersistentVolumeClaimList{}
	opts := []client.ListOption{client.UnsafeDisableDeepCopy}
	if g != nil {
		opts = append(opts, client.MatchingFields{pendingGroupIndex: g.key()})
	}
	if err := a.List(ctx, list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "Failed to list claims")
		return nil
	}
	pending := list.Items[:0]
	for _, pvc := range list.Items {
		if len(a.pendingGroupKey(&pvc)) > 0 {
			pending = append(pending, pvc)
		}
	}
	return pending
}
