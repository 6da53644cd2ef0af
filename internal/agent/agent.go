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

// Package agent is the node agent: one per node, it provisions node-local PersistentVolumes
// (a host directory with the claim's uid, gid and mode) for pending TServer claims, keeps the
// directories of bound volumes as their claims say, and cleans up released and unneeded volumes
// without ever removing the data of a bound one.
//
// The StorageClass's provisioner is the operator's (tarsv1beta1.Provisioner), so the scheduler
// picks a node for a pod first and marks its claims with it (volume.kubernetes.io/selected-node,
// mirrored into the label tars.io/SelectedNode); that node's agent then makes one volume per
// claim, bound to it, as external provisioners do.
package agent

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

// +kubebuilder:rbac:groups="",resources=persistentvolumes,verbs=get;list;watch;create;delete;patch
// +kubebuilder:rbac:groups="",resources=persistentvolumes/status,verbs=update
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=storage.k8s.io,resources=storageclasses,verbs=list;watch
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Config is what one agent needs to know about its node.
type Config struct {
	// NodeName is the node the agent runs on (the downward API's spec.nodeName).
	NodeName string
	// Hostname is the node's kubernetes.io/hostname label: volumes' node affinity uses it.
	Hostname string
	// HostRoot is the host directory volumes live under, as written into PersistentVolumes.
	HostRoot string
	// Root is HostRoot as this process reaches it (a hostPath mount inside the agent's pod).
	Root *hostfs.Root
	// StorageClassName is the class of the claims and volumes the agent handles.
	StorageClassName string
	// GCGracePeriod is how long an unbound volume no claim waits for is kept.
	GCGracePeriod time.Duration
	// ResyncPeriod is how often a bound volume's directory is checked for drift.
	ResyncPeriod time.Duration
	// OrphanScanInterval is how often the host root is scanned for directories that no volume
	// uses; 0 disables the scan.
	OrphanScanInterval time.Duration
	// UsageInterval is how often the directories of the node's bound volumes are measured (a
	// pass starts no sooner than that after the last one started); 0 disables the measuring.
	UsageInterval time.Duration
	// UsageRate is how many directory entries a second the measuring reads at most; 0 is no limit.
	UsageRate int
	// MinFreeSpace and MinFreeInodes are how much of the host root's filesystem must stay free
	// for new volumes to be made on this node (spaceWatch).
	MinFreeSpace, MinFreeInodes FreeFloor
	// DiskCheckInterval is how often the host root's free space is read to mark the node.
	DiskCheckInterval time.Duration
	// Filesystem reads the host root's filesystem figures; nil is Root.Filesystem (tests set it).
	Filesystem func() (hostfs.FilesystemStats, error)
}

// Agent holds what the agent's reconcilers share.
type Agent struct {
	Config
	client.Client
	// APIReader reads objects afresh, where the cache may lag behind.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Events writes the events that Recorder would merge into a series keeping the first one's
	// note, while each says something new (the orphan scan's).
	Events eventsv1client.EventsGetter
	// refused holds why the cleanup of a released volume (by name) was refused, for the claims of
	// its group that wait for it on this node to be handed back, saying why.
	refused sync.Map
	// refusalStored brings each volume whose cleanup was just refused, or failed, to the claim
	// controller (wakeGroup).
	refusalStored chan event.GenericEvent
	// moveFailed holds the released volumes (by name) whose last cleanup failed, with the error and
	// since when they have been failing: their directory could not be moved aside, their delete
	// failed, or a read before them did (the volume, its claim, the node's directories). Another
	// volume's cleanup does not take them along: their own reconcile retries, with back-off.
	moveFailed sync.Map
	// dirChange is held for reading from where the agent makes or removes a volume's directory
	// until it has made or deleted the volume: the two are changed one after the other. The
	// orphan scan holds it to see directories and volumes at a moment when they agree.
	dirChange sync.RWMutex
	// measureRate paces the reading of directories to measure them (volumes' usage, orphans'
	// sizes), together: UsageRate entries a second.
	measureRate *rate.Limiter
	// space is the node's full-disk protection.
	space *spaceWatch
	// removing holds the places below the root of the directories this agent has moved aside
	// and not removed yet (the removal of a large one takes a while): the orphan scan leaves
	// them out.
	removing sync.Map
}

// SetupWithManager registers the agent's reconcilers.
func SetupWithManager(mgr ctrl.Manager, cfg Config) error {
	eventWriter, err := eventsv1client.NewForConfigAndClient(mgr.GetConfig(), mgr.GetHTTPClient())
	if err != nil {
		return err
	}
	a := &Agent{
		Config:    cfg,
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder(reportingController(cfg.NodeName)),
		Events:    eventWriter,

		measureRate:   newMeasureRate(cfg.UsageRate),
		refusalStored: make(chan event.GenericEvent, maxCleanupBatch),
	}
	if a.DiskCheckInterval <= 0 {
		a.DiskCheckInterval = defaultDiskCheckInterval
	}
	a.space = newSpaceWatch(a, mgr.GetCache())
	if err := mgr.Add(a.space); err != nil {
		return err
	}
	if err := (&ClaimReconciler{Agent: a}).SetupWithManager(mgr); err != nil {
		return err
	}
	if err := (&VolumeReconciler{a}).SetupWithManager(mgr); err != nil {
		return err
	}
	if cfg.UsageInterval > 0 {
		if err := mgr.Add(&usageMeter{Agent: a, cache: mgr.GetCache()}); err != nil {
			return err
		}
	}
	if cfg.OrphanScanInterval <= 0 {
		return nil
	}
	return mgr.Add(&orphanScanner{Agent: a, cache: mgr.GetCache()})
}

// reportingController is the name the agent of a node reports events under: tserver-agent-<node>,
// or tserver-agent where that is no qualified name (a node name longer than 49 characters), which
// the API server would refuse every event of.
func reportingController(nodeName string) string {
	if name := "tserver-agent-" + nodeName; len(validation.IsQualifiedName(name)) == 0 {
		return name
	}
	return "tserver-agent"
}

// NewScheme holds the kinds the agent reads and writes, and no others: claims, volumes, nodes
// (core), StorageClasses and StatefulSets (read, uncached, to check a delay-bind claim).
// Registering every built-in group, as the manager does, costs each agent memory for types it
// never sees.
func NewScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntime.Must(corev1.AddToScheme(scheme))
	utilruntime.Must(storagev1.AddToScheme(scheme))
	utilruntime.Must(appsv1.AddToScheme(scheme)) // a delay-bind claim's StatefulSet, read uncached
	return scheme
}

// CacheOptions narrow an agent's caches to what its node needs: the tars claims whose pods the
// scheduler put on this node (labelled tars.io/SelectedNode; every tars claim where the node's
// name is no label value), the volumes of this node, this node and the storage class; so
// neither memory nor API load grows with the cluster's other objects, its other nodes' claims
// among them.
func CacheOptions(nodeName, hostname, storageClass string) cache.Options {
	localVolume, err := labels.NewRequirement(tarsv1beta1.LabelLocalVolume, selection.Exists, nil)
	if err != nil {
		panic(err) // constant requirement
	}
	onNode, err := labels.NewRequirement(corev1.LabelHostname, selection.Equals, []string{hostname})
	if err != nil {
		panic(fmt.Sprintf("hostname %q is not a label value: %v", hostname, err))
	}
	claims := labels.NewSelector().Add(*localVolume)
	if v := tarsv1beta1.SelectedNodeLabelValue(nodeName); v != "" {
		selected, err := labels.NewRequirement(tarsv1beta1.LabelSelectedNode, selection.Equals, []string{v})
		if err != nil {
			panic(err) // a label value
		}
		claims = claims.Add(*selected)
	}
	return cache.Options{
		// Nothing reads managed fields; they are often the bulk of an object.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.PersistentVolume{}:      {Label: labels.NewSelector().Add(*localVolume, *onNode)},
			&corev1.PersistentVolumeClaim{}: {Label: claims},
			&corev1.Node{}:                  {Field: fields.OneTermEqualSelector("metadata.name", nodeName)},
			&storagev1.StorageClass{}:       {Field: fields.OneTermEqualSelector("metadata.name", storageClass)},
		},
	}
}

// group identifies the volumes one tLocalVolume of one server has: at most one per node.
type group struct {
	namespace, app, server, volume string
}

// groupOf reads a claim's or volume's group from its labels; ok is false without all three.
func groupOf(namespace string, l map[string]string) (group, bool) {
	g := group{namespace, l[tarsv1beta1.LabelServerApp], l[tarsv1beta1.LabelServerName], l[tarsv1beta1.LabelLocalVolume]}
	return g, g.app != "" && g.server != "" && g.volume != ""
}

// dir is the group's directory below the host root: <namespace>/<app>.<server>/<volume>.
func (g group) dir() string {
	return path.Join(g.namespace, g.app+"."+g.server, g.volume)
}

// labels are the group's labels on claims and volumes.
func (g group) labels() map[string]string {
	return map[string]string{
		tarsv1beta1.LabelServerApp:   g.app,
		tarsv1beta1.LabelServerName:  g.server,
		tarsv1beta1.LabelLocalVolume: g.volume,
	}
}

// groupOfVolume reads the group of a volume this agent named (its namespace is only in the name).
func (a *Agent) groupOfVolume(pv *corev1.PersistentVolume) (group, bool) {
	ns, ok := tarsv1beta1.LocalVolumeNamespace(pv.Name, pv.Labels)
	if !ok {
		return group{}, false
	}
	g, _ := groupOf(ns, pv.Labels)
	return g, pv.Name == a.volumeName(g) // this node's, in this storage class
}

func (c *Config) volumeName(g group) string {
	return tarsv1beta1.LocalVolumeName(g.namespace, g.volume, g.app, g.server, c.NodeName, c.StorageClassName)
}

// relativePath is where a volume of this agent lives below the root, or "" when its path is not
// below HostRoot (not a volume this agent may touch).
func (a *Agent) relativePath(pv *corev1.PersistentVolume) string {
	if pv.Spec.Local == nil {
		return ""
	}
	rel, ok := strings.CutPrefix(path.Clean(pv.Spec.Local.Path), path.Clean(a.HostRoot)+"/")
	if !ok {
		return ""
	}
	return rel
}

// isOurVolume says whether pv is a tars volume of this node under this agent's root.
func (a *Agent) isOurVolume(pv *corev1.PersistentVolume) bool {
	_, grouped := groupOf("", pv.Labels)
	return grouped && pv.Spec.StorageClassName == a.StorageClassName &&
		pv.Labels[corev1.LabelHostname] == a.Hostname && a.relativePath(pv) != ""
}

// isOurClaim says whether pvc asks for a tars node-local volume of this agent's class.
func (a *Agent) isOurClaim(pvc *corev1.PersistentVolumeClaim) bool {
	_, grouped := groupOf(pvc.Namespace, pvc.Labels)
	return grouped && pvc.Spec.StorageClassName != nil && *pvc.Spec.StorageClassName == a.StorageClassName
}

// boundHere says whether pv is a tars volume of this node, bound to a claim and not being deleted.
func (a *Agent) boundHere(pv *corev1.PersistentVolume) bool {
	return a.isOurVolume(pv) && pv.Spec.ClaimRef != nil && pv.Status.Phase == corev1.VolumeBound &&
		pv.DeletionTimestamp.IsZero()
}

// waitsForVolume says whether pvc is a tars claim of this agent's class that no volume is bound
// to yet and that is not being deleted.
func (a *Agent) waitsForVolume(pvc *corev1.PersistentVolumeClaim) bool {
	return pvc.Spec.VolumeName == "" && pvc.DeletionTimestamp.IsZero() && a.isOurClaim(pvc)
}

// ownershipOf is what a claim's annotations ask of its directory; a missing annotation means
// the default, never mode 0000.
func ownershipOf(pvc *corev1.PersistentVolumeClaim) (hostfs.Ownership, error) {
	get := func(key, def string) string {
		if v := pvc.Annotations[key]; v != "" {
			return v
		}
		return def
	}
	return hostfs.ParseOwnership(
		get(tarsv1beta1.AnnotationLocalVolumeUID, tarsv1beta1.DefaultLocalVolumeUID),
		get(tarsv1beta1.AnnotationLocalVolumeGID, tarsv1beta1.DefaultLocalVolumeGID),
		get(tarsv1beta1.AnnotationLocalVolumeMode, tarsv1beta1.DefaultLocalVolumeMode))
}

// node is this agent's Node, from the cache.
func (a *Agent) node(ctx context.Context) (*corev1.Node, error) {
	node := &corev1.Node{}
	if err := a.Get(ctx, client.ObjectKey{Name: a.NodeName}, node); err != nil {
		return nil, fmt.Errorf("reading node %s: %w", a.NodeName, err)
	}
	return node, nil
}

// storageClass is the agent's StorageClass, from the cache.
func (a *Agent) storageClass(ctx context.Context) (*storagev1.StorageClass, error) {
	sc := &storagev1.StorageClass{}
	if err := a.Get(ctx, client.ObjectKey{Name: a.StorageClassName}, sc); err != nil {
		return nil, fmt.Errorf("reading StorageClass %s: %w", a.StorageClassName, err)
	}
	return sc, nil
}

// reclaimPolicyOf is a StorageClass's reclaim policy: Delete if it gives none.
func reclaimPolicyOf(sc *storagev1.StorageClass) corev1.PersistentVolumeReclaimPolicy {
	if sc.ReclaimPolicy == nil {
		return corev1.PersistentVolumeReclaimDelete
	}
	return *sc.ReclaimPolicy
}

// supportsLocalVolumes says whether a node may hold data volumes: labelled
// tars.io/SupportLocalVolume, with any value but "false".
func supportsLocalVolumes(node *corev1.Node) bool {
	v, ok := node.Labels[tarsv1beta1.LabelSupportLocalVolume]
	return ok && v != "false"
}

// Hostname waits for the node to exist and returns its kubernetes.io/hostname label, the value
// volumes' node affinity must name; the node name when the label is missing. It waits through
// an API server that cannot be reached and a node not registered yet (up to 5 minutes), but not
// through credentials the API server refuses, nor a read of the node refused for longer than
// forbiddenPatience: waiting would not mend them, and an agent that exits says so where its pod
// is looked at.
func Hostname(ctx context.Context, cfg *rest.Config, nodeName string) (string, error) {
	return hostname(ctx, cfg, nodeName, forbiddenPatience)
}

// forbiddenPatience is how long the agent keeps reading its node while the API server forbids it:
// the binding of its ClusterRole may be created just after its DaemonSet.
const forbiddenPatience = 30 * time.Second

func hostname(ctx context.Context, cfg *rest.Config, nodeName string, patience time.Duration) (string, error) {
	// A typed client: controller-runtime's would first discover the API's groups for one read.
	nodes, err := corev1client.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	var node *corev1.Node
	start := time.Now()
	err = wait.PollUntilContextTimeout(ctx, time.Second, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		node, err = nodes.Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		switch {
		case err == nil:
			return true, nil
		case apierrors.IsUnauthorized(err):
			return false, fmt.Errorf("the API server refused the agent's credentials (401 Unauthorized): "+
				"check its service account token, or the kubeconfig it was given: %w", err)
		case apierrors.IsForbidden(err) && time.Since(start) >= patience:
			return false, fmt.Errorf("the agent may not read Node %s (403 Forbidden, for %s): is the agent's "+
				"ClusterRole bound to its service account? %w", nodeName, patience, err)
		}
		ctrl.Log.WithName("agent").Info("Waiting for the node", "node", nodeName, "error", err.Error())
		return false, nil
	})
	switch {
	case err != nil && (apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err)):
		return "", err
	case err != nil:
		return "", fmt.Errorf("node %s not found: %w", nodeName, errors.Join(err, ctx.Err()))
	}
	if h := node.Labels[corev1.LabelHostname]; h != "" {
		return h, nil
	}
	ctrl.Log.WithName("agent").Info("Node has no kubernetes.io/hostname label; volumes name the node instead",
		"node", nodeName)
	return nodeName, nil
}
