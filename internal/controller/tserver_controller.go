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

// Package controller holds the TServer controller: it expands each TServer into a StatefulSet,
// whose claim templates ask for node-local volumes, and a headless Service, and keeps them,
// the claims' ownership annotations and the TServer's status in step with the TServer.
package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

const (
	// specHashAnnotation records the hash of the StatefulSet spec last written from the TServer,
	// so that an unchanged TServer causes no write.
	specHashAnnotation = "k8s.tars.io/spec-hash"

	// waitInterval is how soon to look again while waiting for Kubernetes to finish something
	// that sends no event to this controller (pods letting go of a removed volume's claims).
	waitInterval = 5 * time.Second
)

// TServerReconciler expands TServers into StatefulSets and Services.
type TServerReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// APIReader reads afresh what a deletion rests on (the server's pods before a claim or pod
	// is deleted, a lost node's objects), where the cache may lag behind.
	APIReader client.Reader
	// ProgressInterval is the least time between two status writes of a TServer that only
	// report progress (onlyProgress); any other change of its status is written at once. Zero
	// writes every change at once.
	ProgressInterval time.Duration
	// NodeLossGrace is how long a node-local volume's Node object must have been deleted before
	// its replica is freed (nodeloss.go); nil is DefaultNodeLossGrace.
	NodeLossGrace *time.Duration
	// Clock tells the time of node losses; nil is the wall clock.
	Clock clock.PassiveClock

	statusWrites    statusWrites
	missedNodes     missedNodes
	volumeHostnames sync.Map // volume name -> the hostname its affinity requires, for claims that do not name their node
	nodeGoing       chan struct{}
}

// The manager reads TServers, StatefulSets, Services, claims, Nodes, t-storage-class and the
// servers' pods (stripped to their claims) from its cache (list and watch), the server's pods
// with one uncached list before it deletes claims or pods (deleteUnusedClaims, and
// replacePodsWithoutClaims when the cache shows a pod without a claim), and writes status with a
// patch. Freeing a
// replica from a lost node (nodeloss.go) reads the Node, claims, volumes, pod and TServer from
// the API server (get) before it deletes them, and the lost-volume sweeper lists node-local
// volumes. The StatefulSet controller, not this one, creates the claims.
// tservers/finalizers: update lets it set blockOwnerDeletion on the objects it owns where the
// OwnerReferencesPermissionEnforcement admission plugin is on. The controller suite runs the
// manager with exactly this role and fails on a verb it grants and never uses.
// +kubebuilder:rbac:groups=k8s.tars.io,resources=tservers,verbs=get;list;watch
// +kubebuilder:rbac:groups=k8s.tars.io,resources=tservers/status,verbs=patch
// +kubebuilder:rbac:groups=k8s.tars.io,resources=tservers/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=list;watch;create;update
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;patch;delete
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=persistentvolumes,verbs=get;list;patch;delete
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings a TServer's Service, StatefulSet and claims in line with it, then records
// what it observed in the TServer's status.
func (r *TServerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	ts := &tarsv1beta1.TServer{}
	if err := r.Get(ctx, req.NamespacedName, ts); err != nil {
		if apierrors.IsNotFound(err) {
			r.statusWrites.forget(req.NamespacedName)
			replicasWaiting.set(req.NamespacedName, nil)
			setClaimsPending(req.NamespacedName, nil)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ts.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // garbage collection removes the StatefulSet and Service
	}

	o := &observed{}
	// The StatefulSet first: its pods and claims are what a new server waits for.
	err := r.reconcileStatefulSet(ctx, ts, o)
	if err == nil {
		err = r.reconcileService(ctx, ts, o)
	}
	if len(o.created) > 0 {
		r.Recorder.Eventf(ts, nil, corev1.EventTypeNormal, "Created", "Create", "Created %s",
			strings.Join(o.created, " and "))
		r.warnOfSameServerElsewhere(ctx, ts)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileClaims(ctx, ts, o); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.replacePodsWithoutClaims(ctx, ts, o); err != nil {
		return ctrl.Result{}, err
	}
	if err := r.reconcileNodeLoss(ctx, ts, o); err != nil {
		return ctrl.Result{}, err
	}
	replicasWaiting.set(req.NamespacedName, o.nodeWaits)
	setClaimsPending(req.NamespacedName, o.claims)
	// Having just made the StatefulSet or Service, the status would only say that nothing is
	// ready yet; their creation brings a reconcile within statusBatchPeriod, which writes it
	// (or holds it back, if it only reports progress). A custom resource's status write is
	// costly, and a rollout of many servers makes many.
	var result ctrl.Result
	if len(o.created) == 0 {
		held, err := r.updateStatus(ctx, ts, o)
		if err != nil {
			return ctrl.Result{}, err
		}
		result.RequeueAfter = held
	}
	if o.waiting {
		o.requeueAt(waitInterval)
	}
	if o.requeueAfter > 0 && (result.RequeueAfter == 0 || result.RequeueAfter > o.requeueAfter) {
		result.RequeueAfter = o.requeueAfter
	}
	return result, nil
}

// observed is what one reconcile saw and did, for the status.
type observed struct {
	statefulSet *appsv1.StatefulSet // the TServer's own, nil while absent or recreated
	recreating  bool
	conflicts   []string // objects of the TServer's names that it does not own
	claims      []corev1.PersistentVolumeClaim
	created     []string // "<kind> <name>" of the objects made, for one event
	waiting     bool     // something is under way that no watch will report
	// storageClassProblem says why no volume is provisioned for the claims, if that is so.
	storageClassProblem string
	pins                []replicaPin  // the nodes replicas' node-local claims are on
	nodeWaits           []nodeWait    // replicas held to a node that is gone or not Ready
	requeueAfter        time.Duration // look again within this, if not zero
}

// reconcileService creates or updates the headless Service.
func (r *TServerReconciler) reconcileService(ctx context.Context, ts *tarsv1beta1.TServer, o *observed) error {
	desired := expand.Service(ts)
	existing := &corev1.Service{}
	err := r.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err):
		return r.create(ctx, ts, desired, "Service", o)
	case err != nil:
		return err
	case !metav1.IsControlledBy(existing, ts):
		// Every field of a Service the controller sets may change: it can be adopted whatever it is.
		if how, err := r.takeOverFromGoneOwner(ctx, ts, existing, "Service", true); err != nil || how != adopted {
			if how == foreign {
				r.conflict(ts, existing, "Service", o)
			}
			return err
		}
	}
	if equality.Semantic.DeepEqual(existing.Spec.Ports, desired.Spec.Ports) &&
		equality.Semantic.DeepEqual(existing.Spec.Selector, desired.Spec.Selector) &&
		hasLabels(existing.Labels, desired.Labels) {
		return nil
	}
	existing.Spec.Ports, existing.Spec.Selector = desired.Spec.Ports, desired.Spec.Selector
	existing.Labels = mergeLabels(existing.Labels, desired.Labels)
	if err := r.Update(ctx, existing); err != nil {
		return err
	}
	r.Recorder.Eventf(ts, existing, corev1.EventTypeNormal, "UpdatedService", "Update", "Updated Service %s",
		existing.Name)
	return nil
}

// reconcileStatefulSet creates the StatefulSet, updates it in place, or, when its claim
// templates must change (they are immutable), deletes it leaving its pods running so that the
// new StatefulSet adopts them and replaces them one by one.
func (r *TServerReconciler) reconcileStatefulSet(ctx context.Context, ts *tarsv1beta1.TServer, o *observed) error {
	log := logf.FromContext(ctx)
	desired := expand.StatefulSet(ts)
	hash, err := specHash(desired)
	if err != nil {
		return err
	}
	desired.Annotations = map[string]string{specHashAnnotation: hash}

	existing := &appsv1.StatefulSet{}
	err = r.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.create(ctx, ts, desired, "StatefulSet", o); err != nil {
			return err
		}
		o.statefulSet = desired
		return nil
	case err != nil:
		return err
	case !metav1.IsControlledBy(existing, ts):
		// A StatefulSet's selector and service name never change: one of a server of another
		// app or name cannot become this one's.
		adoptable := equality.Semantic.DeepEqual(existing.Spec.Selector, desired.Spec.Selector) &&
			existing.Spec.ServiceName == desired.Spec.ServiceName
		how, err := r.takeOverFromGoneOwner(ctx, ts, existing, "StatefulSet", adoptable)
		switch {
		case err != nil:
			return err
		case how == foreign:
			r.conflict(ts, existing, "StatefulSet", o)
			return nil
		case how == going:
			o.recreating = true // its deletion brings us back
			return nil
		}
	}

	if !existing.DeletionTimestamp.IsZero() {
		o.recreating = true // the old one is going; its deletion brings us back
		return nil
	}
	if mustRecreate(existing, desired) {
		log.Info("Deleting StatefulSet to change its claim templates, orphaning its pods", "statefulSet", existing.Name,
			"from", expand.ClaimTemplateNames(existing), "to", expand.ClaimTemplateNames(desired))
		err := r.Delete(ctx, existing, client.PropagationPolicy(metav1.DeletePropagationOrphan),
			client.Preconditions{UID: &existing.UID, ResourceVersion: &existing.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		r.Recorder.Eventf(ts, existing, corev1.EventTypeNormal, tarsv1beta1.ReasonRecreatingStatefulSet, "Delete",
			"Recreating StatefulSet %s to change its claim templates from %v to %v; its pods keep running and are "+
				"replaced one at a time", existing.Name, expand.ClaimTemplateNames(existing), expand.ClaimTemplateNames(desired))
		o.recreating = true
		return nil
	}

	o.statefulSet = existing
	if existing.Annotations[specHashAnnotation] == hash && *existing.Spec.Replicas == *desired.Spec.Replicas {
		return nil
	}
	existing.Spec.Replicas = desired.Spec.Replicas
	existing.Spec.Template = desired.Spec.Template
	existing.Spec.UpdateStrategy = desired.Spec.UpdateStrategy
	existing.Spec.PersistentVolumeClaimRetentionPolicy = desired.Spec.PersistentVolumeClaimRetentionPolicy
	existing.Labels = mergeLabels(existing.Labels, desired.Labels)
	existing.Annotations = mergeLabels(existing.Annotations, desired.Annotations)
	if err := r.Update(ctx, existing); err != nil {
		return err
	}
	log.Info("Updated StatefulSet", "statefulSet", existing.Name)
	r.Recorder.Eventf(ts, existing, corev1.EventTypeNormal, "UpdatedStatefulSet", "Update", "Updated StatefulSet %s",
		existing.Name)
	return nil
}

// mustRecreate says whether existing cannot become desired by an update: its claim templates
// are immutable, and so is its pod management policy.
func mustRecreate(existing, desired *appsv1.StatefulSet) bool {
	return !sets.New(expand.ClaimTemplateNames(existing)...).Equal(sets.New(expand.ClaimTemplateNames(desired)...)) ||
		existing.Spec.PodManagementPolicy != desired.Spec.PodManagementPolicy
}

// specHash hashes what the controller writes into a StatefulSet, except the replica count
// (compared directly, so that a `kubectl scale sts` is undone) and the claim templates'
// annotations (immutable there; the controller writes them onto the claims instead).
func specHash(sts *appsv1.StatefulSet) (string, error) {
	spec := sts.Spec.DeepCopy()
	spec.Replicas = nil
	for i := range spec.VolumeClaimTemplates {
		spec.VolumeClaimTemplates[i].Annotations = nil
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8]), nil
}

// serverIndex indexes the claims and pods in the manager's cache by the server their labels name,
// "<app>/<server>": a server's are found among the thousands of a namespace without matching
// the labels of each (at a thousand servers, the manager's reconciles spent most of their CPU
// there).
const serverIndex = "tars.server"

// serverKey is the serverIndex value of a server's app and name (a label value holds no slash).
func serverKey(app, server string) string { return app + "/" + server }

// serverOfLabels is the serverIndex value of an object labelled with a server's app and name.
func serverOfLabels(obj client.Object) []string {
	app, server := obj.GetLabels()[tarsv1beta1.LabelServerApp], obj.GetLabels()[tarsv1beta1.LabelServerName]
	if app == "" || server == "" {
		return nil
	}
	return []string{serverKey(app, server)}
}

// ofServer selects the cached claims or pods of ts (serverIndex).
func ofServer(ts *tarsv1beta1.TServer) []client.ListOption {
	return []client.ListOption{client.InNamespace(ts.Namespace),
		client.MatchingFields{serverIndex: serverKey(ts.Spec.App, ts.Spec.Server)}}
}

// appServerIndex indexes TServers by "<app>.<server>", to find the same server in other namespaces.
const appServerIndex = "spec.appServer"

func appServer(ts *tarsv1beta1.TServer) string { return ts.Spec.App + "." + ts.Spec.Server }

// warnOfSameServerElsewhere reports, when a server with node-local volumes is first expanded,
// the same server in other namespaces: node-local claims select volumes by app, server and
// volume name (as TarsK8S's do), so the two could bind each other's volumes.
func (r *TServerReconciler) warnOfSameServerElsewhere(ctx context.Context, ts *tarsv1beta1.TServer) {
	if !expand.HasLocalVolume(ts) {
		return
	}
	list := &tarsv1beta1.TServerList{}
	if err := r.List(ctx, list, client.MatchingFields{appServerIndex: appServer(ts)}); err != nil {
		logf.FromContext(ctx).Error(err, "Failed to look for the same server in other namespaces")
		return
	}
	var others []string
	for _, other := range list.Items {
		if other.Namespace != ts.Namespace {
			others = append(others, other.Namespace)
		}
	}
	if len(others) > 0 {
		r.Recorder.Eventf(ts, nil, corev1.EventTypeWarning, "SameServerInAnotherNamespace", "Create",
			"Server %s also runs in namespace(s) %s: node-local volumes are matched by app, server and volume name, "+
				"so they can bind each other's volumes; give them different app or server names",
			appServer(ts), strings.Join(slices.Sorted(slices.Values(others)), ", "))
	}
}

// create creates obj owned by ts; an object of that name that ts does not own is a conflict.
func (r *TServerReconciler) create(ctx context.Context, ts *tarsv1beta1.TServer, obj client.Object, kind string,
	o *observed) error {
	if err := controllerutil.SetControllerReference(ts, obj, r.Scheme); err != nil {
		return err
	}
	err := r.Create(ctx, obj)
	if apierrors.IsAlreadyExists(err) {
		// Not in the cache, which holds only objects labelled as a TServer's: someone else's.
		r.conflict(ts, obj, kind, o)
		return nil
	}
	if err != nil {
		return err
	}
	logf.FromContext(ctx).Info("Created "+kind, "name", obj.GetName())
	o.created = append(o.created, kind+" "+obj.GetName())
	return nil
}

// takeover is what takeOverFromGoneOwner made of an object of a TServer's name that the
// TServer does not control.
type takeover int

const (
	// foreign: someone else's, left alone.
	foreign takeover = iota
	// adopted: the TServer's own now.
	adopted
	// going: being deleted, or deleted now; the TServer makes its own once it is gone.
	going
)

// takeOverFromGoneOwner takes over obj when its controller is an earlier TServer of the same
// name that no longer exists (a TServer deleted and created again). The garbage collector
// should have removed such an object, but can miss the owner's deletion for good: an owner
// deleted and made again under its name while the collector's watch was down (kube-apiserver or
// kube-controller-manager restarting) reaches it as an update, and the object would stay in the
// TServer's way for ever (a chaos run found this). An adoptable object is adopted, its pods
// kept running; the reconcile then updates or re-creates it as for any change. One that cannot
// become the TServer's (a StatefulSet of another app or server: its selector never changes) is
// deleted as the collector would have, in the background, with UID and resourceVersion
// preconditions. Either needs the API server to confirm that the TServer of that name is ts and
// is not being deleted (so the owner, of another uid, is gone: names are unique in a namespace
// and uids for ever); while the cache is behind, it returns an error to be tried again.
func (r *TServerReconciler) takeOverFromGoneOwner(ctx context.Context, ts *tarsv1beta1.TServer, obj client.Object,
	kind string, adoptable bool) (takeover, error) {
	ref := metav1.GetControllerOf(obj)
	if ref == nil || ref.Kind != "TServer" || ref.Name != ts.Name || ref.UID == ts.UID {
		return foreign, nil
	}
	if gv, err := schema.ParseGroupVersion(ref.APIVersion); err != nil || gv.Group != tarsv1beta1.GroupVersion.Group {
		return foreign, nil
	}
	if !obj.GetDeletionTimestamp().IsZero() {
		return going, nil
	}
	now := &tarsv1beta1.TServer{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ts), now); err != nil {
		return going, client.IgnoreNotFound(err) // not found: this TServer is gone too
	}
	if now.UID != ts.UID || !now.DeletionTimestamp.IsZero() {
		return going, fmt.Errorf("%s %s names TServer uid %s as its controller; the cache has uid %s "+
			"and the API server uid %s (deleting: %t), so the cache is behind: trying again",
			kind, obj.GetName(), ref.UID, ts.UID, now.UID, !now.DeletionTimestamp.IsZero())
	}
	log := logf.FromContext(ctx)
	if !adoptable {
		rv, uid := obj.GetResourceVersion(), obj.GetUID()
		err := r.Delete(ctx, obj, client.PropagationPolicy(metav1.DeletePropagationBackground),
			client.Preconditions{UID: &uid, ResourceVersion: &rv})
		if err != nil && !apierrors.IsNotFound(err) {
			return going, err // a conflict: the next reconcile sees it as it is
		}
		log.Info("Deleted the "+kind+" of an earlier TServer of this name, which cannot become this one's", "name",
			obj.GetName(), "formerOwnerUID", ref.UID)
		r.Recorder.Eventf(ts, obj, corev1.EventTypeNormal, "Deleted"+kind, "Delete",
			"Deleted %s %s, left behind by an earlier TServer of this name (uid %s) that the garbage collector has not "+
				"removed, and made for another server; this TServer makes its own", kind, obj.GetName(), ref.UID)
		return going, nil
	}
	obj.SetOwnerReferences(slices.DeleteFunc(obj.GetOwnerReferences(), func(o metav1.OwnerReference) bool {
		return o.UID == ref.UID
	}))
	if err := controllerutil.SetControllerReference(ts, obj, r.Scheme); err != nil {
		return going, err
	}
	if err := r.Update(ctx, obj); err != nil {
		return going, err // a conflict or a deletion meanwhile: the next reconcile sees it as it is
	}
	log.Info("Adopted the "+kind+" of an earlier TServer of this name", "name", obj.GetName(), "formerOwnerUID", ref.UID)
	r.Recorder.Eventf(ts, obj, corev1.EventTypeNormal, "Adopted"+kind, "Adopt",
		"Adopted %s %s, left behind by an earlier TServer of this name (uid %s) that the garbage collector has not removed",
		kind, obj.GetName(), ref.UID)
	return adopted, nil
}

// conflict reports an object that has a TServer's name but is not the TServer's: it is never
// touched.
func (r *TServerReconciler) conflict(ts *tarsv1beta1.TServer, obj client.Object, kind string, o *observed) {
	msg := fmt.Sprintf("%s %s exists and is not owned by this TServer; it is left alone. "+
		"Delete or rename it to let the TServer create its own", kind, obj.GetName())
	o.conflicts = append(o.conflicts, msg)
	r.Recorder.Eventf(ts, nil, corev1.EventTypeWarning, tarsv1beta1.ReasonConflict, "Reconcile", msg)
}

// reconcileClaims keeps the ownership annotations of the server's node-local claims equal to
// its tLocalVolumes, and deletes the claims of local volumes no longer declared, once no pod
// uses them.
func (r *TServerReconciler) reconcileClaims(ctx context.Context, ts *tarsv1beta1.TServer, o *observed) error {
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.List(ctx, list, ofServer(ts)...); err != nil {
		return err
	}
	o.claims = list.Items
	if len(expand.LocalClaimTemplateNames(ts)) > 0 {
		problem, err := r.storageClassProblem(ctx)
		if err != nil {
			return err
		}
		o.storageClassProblem = problem
	}

	annotations := map[string]map[string]string{}
	for _, m := range ts.Spec.K8S.Mounts {
		if m.Source.TLocalVolume != nil {
			annotations[m.Name] = expand.LocalVolumeAnnotations(m.Source.TLocalVolume)
		}
	}
	reannotated := map[string]int{}
	var obsolete []*corev1.PersistentVolumeClaim
	for i := range list.Items {
		pvc := &list.Items[i]
		volume, local := pvc.Labels[tarsv1beta1.LabelLocalVolume]
		if !local || !pvc.DeletionTimestamp.IsZero() || !isClaimOf(pvc, ts, volume) {
			continue
		}
		want, declared := annotations[volume]
		switch {
		case declared && !hasLabels(pvc.Annotations, want):
			patch := client.MergeFrom(pvc.DeepCopy())
			pvc.Annotations = mergeLabels(pvc.Annotations, want)
			if err := r.Patch(ctx, pvc, patch); err != nil {
				return err
			}
			reannotated[volume]++
		case !declared && (volume != tarsv1beta1.DelayBindVolumeName || !expand.NeedsDelayBind(ts)):
			obsolete = append(obsolete, pvc)
		}
	}
	for _, volume := range slices.Sorted(maps.Keys(reannotated)) {
		logf.FromContext(ctx).Info("Updated ownership annotations of claims", "volume", volume, "claims", reannotated[volume])
		r.Recorder.Eventf(ts, nil, corev1.EventTypeNormal, "ReannotatedClaims", "Update",
			"Set uid/gid/mode of %d claim(s) of volume %s to %s/%s/%s", reannotated[volume], volume,
			annotations[volume][tarsv1beta1.AnnotationLocalVolumeUID], annotations[volume][tarsv1beta1.AnnotationLocalVolumeGID],
			annotations[volume][tarsv1beta1.AnnotationLocalVolumeMode])
	}
	// Only once the StatefulSet without those claim templates exists: the old one would make
	// the claims again.
	if len(obsolete) == 0 || o.statefulSet == nil || o.statefulSet.UID == "" ||
		slices.ContainsFunc(expand.ClaimTemplateNames(o.statefulSet), func(n string) bool {
			return slices.ContainsFunc(obsolete, func(pvc *corev1.PersistentVolumeClaim) bool {
				return pvc.Labels[tarsv1beta1.LabelLocalVolume] == n
			})
		}) {
		return nil
	}
	return r.deleteUnusedClaims(ctx, ts, obsolete, o)
}

// isClaimOf says whether pvc is one the StatefulSet of ts made from its claim template volume:
// <volume>-<ts name>-<ordinal>.
func isClaimOf(pvc *corev1.PersistentVolumeClaim, ts *tarsv1beta1.TServer, volume string) bool {
	template, _, ok := claimOrdinal(pvc.Name, ts.Name)
	return ok && template == volume
}

// deleteUnusedClaims deletes the claims no pod of the server mounts; the others are left for a
// later pass, after the rolling update has replaced their pods.
func (r *TServerReconciler) deleteUnusedClaims(ctx context.Context, ts *tarsv1beta1.TServer,
	claims []*corev1.PersistentVolumeClaim, o *observed) error {
	pods := &corev1.PodList{}
	if err := r.APIReader.List(ctx, pods, client.InNamespace(ts.Namespace),
		client.MatchingLabels(expand.PodLabels(ts))); err != nil {
		return err
	}
	inUse := sets.New[string]()
	for _, pod := range pods.Items {
		for _, v := range pod.Spec.Volumes {
			if v.PersistentVolumeClaim != nil {
				inUse.Insert(v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
	for _, pvc := range claims {
		if inUse.Has(pvc.Name) {
			o.waiting = true
			continue
		}
		err := r.Delete(ctx, pvc, client.Preconditions{UID: &pvc.UID})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		volume := pvc.Labels[tarsv1beta1.LabelLocalVolume]
		logf.FromContext(ctx).Info("Deleted claim of a removed volume", "claim", pvc.Name, "volume", volume)
		r.Recorder.Eventf(ts, pvc, corev1.EventTypeNormal, "DeletedClaim", "Delete",
			"Deleted claim %s: volume %s is no longer declared and no pod uses it", pvc.Name, volume)
	}
	return nil
}

// hasLabels says whether have contains every key and value of want.
func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// mergeLabels returns have with every key of want set to want's value.
func mergeLabels(have, want map[string]string) map[string]string {
	out := maps.Clone(have)
	if out == nil {
		out = map[string]string{}
	}
	maps.Copy(out, want)
	return out
}

// CacheOptions narrow the manager's caches of the kinds the controller reads to the objects of
// TServers (labelled tars.io/ServerApp) and t-storage-class, its Nodes to what node loss needs
// (nodeOnlyLoss) and its pods to their claims (podOnlyClaims), so its memory does not grow with
// the rest of the cluster. No object keeps its managed fields, which nothing here reads and which
// are often the bulk of an object (an update without them keeps the stored ones).
func CacheOptions() cache.Options {
	req, err := labels.NewRequirement(tarsv1beta1.LabelServerApp, selection.Exists, nil)
	if err != nil {
		panic(err) // a constant requirement
	}
	ours := cache.ByObject{Label: labels.NewSelector().Add(*req)}
	return cache.Options{DefaultTransform: cache.TransformStripManagedFields(), ByObject: map[client.Object]cache.ByObject{
		&appsv1.StatefulSet{}:           ours,
		&corev1.Service{}:               ours,
		&corev1.PersistentVolumeClaim{}: ours,
		&corev1.Pod{}:                   {Label: ours.Label, Transform: podOnlyClaims},
		&storagev1.StorageClass{}:       {Field: fields.OneTermEqualSelector("metadata.name", tarsv1beta1.StorageClassName)},
		&corev1.Node{}:                  {Transform: nodeOnlyLoss},
	}}
}

// SetupWithManager sets up the controller with the Manager.
// tserverChanged passes what a TServer's reconcile must follow: its creation, deletion and spec
// changes (its generation), and its replacement by another of the same name. After a watch broke
// (an API server restart), the informer's relist reports a TServer deleted and created again as an
// update from the old to the new; with the same generation on both, GenerationChangedPredicate
// alone drops it, and the new TServer is not reconciled until its next spec change, or ever.
var tserverChanged = predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld != nil && e.ObjectNew != nil && e.ObjectOld.GetUID() != e.ObjectNew.GetUID()
	},
})

func (r *TServerReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &tarsv1beta1.TServer{}, appServerIndex,
		func(obj client.Object) []string { return []string{appServer(obj.(*tarsv1beta1.TServer))} }); err != nil {
		return err
	}
	for _, obj := range []client.Object{&corev1.PersistentVolumeClaim{}, &corev1.Pod{}} {
		if err := mgr.GetFieldIndexer().IndexField(context.Background(), obj, serverIndex, serverOfLabels); err != nil {
			return err
		}
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.PersistentVolumeClaim{}, claimNodeIndex,
		func(obj client.Object) []string {
			if node := claimNode(obj.(*corev1.PersistentVolumeClaim)); node != "" {
				return []string{node}
			}
			return nil
		}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &corev1.Node{}, nodeHostnameIndex,
		func(obj client.Object) []string {
			if h := obj.GetLabels()[corev1.LabelHostname]; h != "" {
				return []string{h}
			}
			return nil
		}); err != nil {
		return err
	}
	r.nodeGoing = make(chan struct{}, 1)
	if err := mgr.Add(&lostVolumeSweeper{r: r}); err != nil {
		return err
	}
	owner := handler.EnqueueRequestForOwner(mgr.GetScheme(), mgr.GetRESTMapper(), &tarsv1beta1.TServer{},
		handler.OnlyControllerOwner())
	return ctrl.NewControllerManagedBy(mgr).
		For(&tarsv1beta1.TServer{}, builder.WithPredicates(tserverChanged)).
		// Claims binding and pods getting ready come in bursts, and a reconcile that creates the
		// Service and StatefulSet hears of both at once: one reconcile (and status write) per
		// statusBatchPeriod is enough. An immediate one would also read the TServer from the
		// cache before the status just written reaches it, and write that status again.
		Watches(&appsv1.StatefulSet{}, batched(owner, statusBatchPeriod)).
		Watches(&corev1.Service{}, batched(owner, statusBatchPeriod)).
		Watches(&corev1.PersistentVolumeClaim{},
			batched(handler.EnqueueRequestsFromMapFunc(tserverOfLabels), statusBatchPeriod)).
		Watches(&corev1.Node{}, r.nodeHandler(mgr.GetClient())).
		// Only pods that lack a claim of their StatefulSet's templates (replacePodsWithoutClaims):
		// the cache learning of one brings a reconcile, whatever it read before. Batched too: the
		// pods a StatefulSet adopts come together.
		Watches(&corev1.Pod{}, batched(handler.EnqueueRequestsFromMapFunc(podWithoutClaims(mgr.GetClient())),
			statusBatchPeriod)).
		Named("tserver").
		// TServers are independent; a rollout of many should not queue behind one worker.
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// podWithoutClaims maps a pod that lacks a claim of its StatefulSet's templates (lacksClaims) to
// its TServer, and any other pod to none.
func podWithoutClaims(c client.Reader) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		pod, ok := obj.(*corev1.Pod)
		owner := metav1.GetControllerOf(obj)
		if !ok || owner == nil || owner.Kind != "StatefulSet" {
			return nil
		}
		// Read, never changed: the cache's own object, not a copy of it at every pod event.
		sts := &appsv1.StatefulSet{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: pod.Namespace, Name: owner.Name}, sts,
			client.UnsafeDisableDeepCopy); err != nil || !lacksClaims(sts, pod) {
			return nil
		}
		return tserverOfLabels(ctx, pod)
	}
}

// tserverOfLabels maps an object labelled with a server's app and name to its TServer.
func tserverOfLabels(_ context.Context, obj client.Object) []reconcile.Request {
	app, server := obj.GetLabels()[tarsv1beta1.LabelServerApp], obj.GetLabels()[tarsv1beta1.LabelServerName]
	if app == "" || server == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{
		Namespace: obj.GetNamespace(), Name: tarsv1beta1.ResourceName(app, server),
	}}}
}
