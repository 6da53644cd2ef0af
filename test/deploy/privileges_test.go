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

package deploy

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/agent"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

// TestAgentLeastPrivilege runs the agent, as its service account with a token bound to a pod on
// its node, under the rendered ClusterRole and node restriction policy, through every kind of
// work it does; then checks, from the API server's audit log, that the role grants exactly what
// the agent used (a permission no run needs fails the test, as does one the agent was refused),
// that the node restriction policy refused it nothing, and that the role grants no Secrets and
// no wildcards.
//
// One grant is there for speed, not need: update on persistentvolumes/status lets the agent mark
// a volume it has just made for a claim Bound, a step of the binding that kube-controller-manager's
// PV binder would otherwise take, one claim at a time (docs/performance.md). The run shows it used.
func TestAgentLeastPrivilege(t *testing.T) {
	objs := rendered(t)
	c := cluster(t)
	role := &rbacv1.ClusterRole{}
	find(t, objs, "ClusterRole", "tserver-operator-agent-role", role)
	for _, r := range role.Rules {
		if slices.Contains(r.Resources, "secrets") || slices.Contains(r.Resources, "*") || slices.Contains(r.Verbs, "*") ||
			slices.Contains(r.APIGroups, "*") || len(r.ResourceNames) > 0 || len(r.NonResourceURLs) > 0 {
			t.Errorf("agent role grants %v on %v of %v", r.Verbs, r.Resources, r.APIGroups)
		}
	}
	binding := &rbacv1.ClusterRoleBinding{}
	find(t, objs, "ClusterRoleBinding", "tserver-operator-agent-rolebinding", binding)
	if binding.RoleRef.Name != role.Name || len(binding.Subjects) != 1 ||
		binding.Subjects[0].Name != c.serviceAccount || binding.Subjects[0].Namespace != c.namespace {
		t.Errorf("agent role binding %+v does not bind the role to the DaemonSet's service account %s/%s",
			binding, c.namespace, c.serviceAccount)
	}

	const node = "agent-node"
	runAgentThroughItsWork(t, c, node)

	used := map[permission]bool{}
	for _, e := range c.requestsOf(t, node) {
		resource := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			resource += "/" + e.ObjectRef.Subresource
		}
		used[permission{e.ObjectRef.APIGroup, resource, e.Verb}] = true
		if e.ResponseStatus != nil && e.ResponseStatus.Code == 403 {
			t.Errorf("the agent was refused %s %s %s: %s", e.Verb, resource, e.ObjectRef.Name, e.ResponseStatus.Message)
		}
	}
	// An informer lists, then watches; client-go lists in a watch (watch-list) where the API
	// server serves that, and falls back to a list where not (older servers): list is needed
	// wherever watch is.
	for p := range used {
		if p.verb == "watch" {
			used[permission{p.group, p.resource, "list"}] = true
		}
	}
	granted := map[permission]bool{}
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					granted[permission{g, res, v}] = true
				}
			}
		}
	}
	for p := range granted {
		if !used[p] {
			t.Errorf("the agent role grants %s, which the agent never used: drop it from the +kubebuilder:rbac markers "+
				"in internal/agent, or make runAgentThroughItsWork do the work that needs it", p)
		}
	}
	for p := range used {
		if !granted[p] {
			t.Errorf("the agent used %s, which its role does not grant", p)
		}
	}
}

// runAgentThroughItsWork runs an agent for node, in this process, until it has done each kind of
// work it does on a cluster; the comments name the calls each step makes.
func runAgentThroughItsWork(t *testing.T, c *agentCluster, node string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logPath := filepath.Join(t.TempDir(), "agent.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	logf.SetLogger(zap.New(zap.WriteTo(logFile), zap.UseDevMode(true)))
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("agent log:\n%s", data)
		}
	})

	ns, sc := "tars", tarsv1beta1.StorageClassName
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid()) // directories this process may own
	// The hostname label is the node's name, as on most clusters: volumes made without
	// attribution are the agent's by that label (see TestAgentNodeRestriction).
	hostname := node
	must(t, c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	nodeObj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{
		corev1.LabelHostname: hostname, tarsv1beta1.LabelSupportLocalVolume: "true",
	}}}
	must(t, c.admin.Create(ctx, nodeObj))

	dir := t.TempDir()
	root, err := hostfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = root.Close() }()
	// As tserver-agent starts: it reads its node's hostname label first.
	if got, err := agent.Hostname(ctx, c.agentConfig(node), node); err != nil || got != hostname {
		t.Fatalf("agent.Hostname = %q, %v; want %q", got, err, hostname)
	}
	mgr, err := ctrl.NewManager(c.agentConfig(node), ctrl.Options{
		Scheme:     agent.NewScheme(),
		Cache:      agent.CacheOptions(node, hostname, sc),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: new(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The host root's filesystem as the test says: half free, or nearly full.
	var diskFull atomic.Bool
	filesystem := func() (hostfs.FilesystemStats, error) {
		stats := hostfs.FilesystemStats{Bytes: 100 << 30, BytesAvailable: 50 << 30, Inodes: 1 << 20, InodesFree: 1 << 19}
		if diskFull.Load() {
			stats.BytesAvailable = 1 << 30
		}
		return stats, nil
	}
	floor, err := agent.ParseFreeFloor("10%", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.SetupWithManager(mgr, agent.Config{
		NodeName: node, Hostname: hostname, HostRoot: c.hostRoot, Root: root, StorageClassName: sc,
		GCGracePeriod: time.Second, ResyncPeriod: time.Second,
		MinFreeSpace: floor, Filesystem: filesystem, DiskCheckInterval: 100 * time.Millisecond,
	}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	}()

	// Claims and volumes are of servers of app "shop".
	const app = "shop"
	claim := func(name, server, volume string, annotations map[string]string) *corev1.PersistentVolumeClaim {
		pvc := testClaim(name, node)
		pvc.Namespace = ns
		pvc.Labels = map[string]string{
			tarsv1beta1.LabelServerApp: app, tarsv1beta1.LabelServerName: server, tarsv1beta1.LabelLocalVolume: volume,
		}
		if !servesMutatingPolicy() {
			pvc.Labels[tarsv1beta1.LabelSelectedNode] = node // as the manager does there
		}
		pvc.Annotations[tarsv1beta1.AnnotationLocalVolumeUID] = uid
		pvc.Annotations[tarsv1beta1.AnnotationLocalVolumeGID] = gid
		maps.Copy(pvc.Annotations, annotations)
		must(t, c.admin.Create(ctx, pvc))
		return pvc
	}
	// madeBefore is a volume of a group on this node as TarsK8S made it: no attribution.
	madeBefore := func(server, volume string, phase corev1.PersistentVolumePhase,
		ref *corev1.ObjectReference) *corev1.PersistentVolume {
		name := tarsv1beta1.LocalVolumeName(ns, volume, app, server, node, sc)
		pv := testVolume(name, "", hostname, c.hostRoot+"/"+ns+"/"+app+"."+server+"/"+volume)
		pv.Labels[tarsv1beta1.LabelServerApp], pv.Labels[tarsv1beta1.LabelServerName] = app, server
		pv.Labels[tarsv1beta1.LabelLocalVolume] = volume
		pv.Spec.ClaimRef = ref
		must(t, c.admin.Create(ctx, pv))
		pv.Status.Phase = phase
		must(t, c.admin.Status().Update(ctx, pv))
		return pv
	}
	volume := func(name string) *corev1.PersistentVolume {
		pv := &corev1.PersistentVolume{}
		if err := c.admin.Get(ctx, client.ObjectKey{Name: name}, pv); err != nil {
			return nil
		}
		return pv
	}
	until := func(what string, done func() bool) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true,
			func(context.Context) (bool, error) { return done(), nil }); err != nil {
			t.Fatalf("the agent never %s", what)
		}
	}

	// Provisioning: create persistentvolumes, then update persistentvolumes/status (Bound).
	// Informers list and watch claims, volumes, the node and the StorageClass; the claims of
	// the claim's pod are listed from the API server (list persistentvolumeclaims).
	provisioned := claim("data-shop-cart-0", "cart", "data", nil)
	pvName := tarsv1beta1.LocalVolumeName(ns, "data", app, "cart", node, sc)
	until("provisioned a Bound volume", func() bool {
		pv := volume(pvName)
		return pv != nil && pv.Status.Phase == corev1.VolumeBound
	})

	// A volume made beforehand: patch persistentvolumes (its claimRef).
	old := madeBefore("order", "data", corev1.VolumePending, nil)
	if err := os.MkdirAll(filepath.Join(dir, ns, app+".order", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	claim("data-shop-order-0", "order", "data", nil)
	until("bound a volume made beforehand", func() bool {
		pv := volume(old.Name)
		return pv != nil && pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Name == "data-shop-order-0"
	})

	// A claim bound to a volume made beforehand, without the scheduler's choice of node: get
	// persistentvolumeclaims (uncached), patch it (label tars.io/SelectedNode). Its directory
	// is missing: patch persistentvolumeclaims (tars.io/VolumeProblem), create events.
	bound := &corev1.PersistentVolumeClaim{}
	func() {
		pvc := testClaim("data-shop-user-0", "")
		pvc.Namespace = ns
		delete(pvc.Annotations, annSelectedNode)
		pvc.Labels = map[string]string{
			tarsv1beta1.LabelServerApp: app, tarsv1beta1.LabelServerName: "user", tarsv1beta1.LabelLocalVolume: "data",
		}
		pvc.Spec.VolumeName = tarsv1beta1.LocalVolumeName(ns, "data", app, "user", node, sc)
		must(t, c.admin.Create(ctx, pvc))
		madeBefore("user", "data", corev1.VolumeBound, &corev1.ObjectReference{
			Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: pvc.Name, UID: pvc.UID,
		})
		bound = pvc
	}()
	until("labelled a claim bound to a volume of its node", func() bool {
		pvc := &corev1.PersistentVolumeClaim{}
		return c.admin.Get(ctx, client.ObjectKeyFromObject(bound), pvc) == nil &&
			pvc.Labels[tarsv1beta1.LabelSelectedNode] == node
	})
	reported := func() bool {
		pvc := &corev1.PersistentVolumeClaim{}
		must(t, c.admin.Get(ctx, client.ObjectKeyFromObject(bound), pvc))
		_, ok := pvc.Annotations[tarsv1beta1.AnnotationVolumeProblem]
		return ok
	}
	until("reported the missing directory of a bound volume", reported)
	// The disk is back: the report goes (and the node may provision and clean up again).
	if err := os.MkdirAll(filepath.Join(dir, ns, app+".user", "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	until("cleared the report of a directory that is back", func() bool { return !reported() })

	// The same Warning twice about one claim: create events, then patch events (the series).
	claim("data-shop-bad-0", "bad", "data", map[string]string{tarsv1beta1.AnnotationLocalVolumeMode: "8"})
	until("reported an invalid claim", func() bool { return warned(ctx, c, ns, "data-shop-bad-0", false) })
	nodeObj.Labels["example.com/touched"] = "true" // the node's labels changing brings its pending claims back
	must(t, c.admin.Update(ctx, nodeObj))
	until("reported an invalid claim again, as a series", func() bool {
		return warned(ctx, c, ns, "data-shop-bad-0", true)
	})

	// Released with reclaim policy Delete, its claim gone: get persistentvolumes and list them
	// (uncached), get persistentvolumeclaims (the claim is gone), delete persistentvolumes.
	must(t, c.admin.Delete(ctx, provisioned))
	must(t, c.admin.Patch(ctx, provisioned, mergePatch(`{"metadata":{"finalizers":null}}`)))
	released := volume(pvName)
	released.Status.Phase = corev1.VolumeReleased
	must(t, c.admin.Status().Update(ctx, released))
	until("deleted a released volume", func() bool {
		pv := volume(pvName)
		return pv == nil || pv.DeletionTimestamp != nil
	})

	// An unbound volume no claim waits for: list persistentvolumeclaims (uncached), delete it.
	unneeded := madeBefore("gone", "data", corev1.VolumeAvailable, nil)
	until("collected an unneeded volume", func() bool {
		pv := volume(unneeded.Name)
		return pv == nil || pv.DeletionTimestamp != nil
	})

	// The disk nearly full, then freed: patch nodes (label tars.io/DiskFull), create events.
	diskFull.Store(true)
	labelled := func() bool {
		n := &corev1.Node{}
		must(t, c.admin.Get(ctx, client.ObjectKey{Name: node}, n))
		_, ok := n.Labels[tarsv1beta1.LabelDiskFull]
		return ok
	}
	until("marked its node's disk full", labelled)
	diskFull.Store(false)
	until("unmarked its node's disk once freed", func() bool { return !labelled() })

	// A node that does not support local volumes, and a delay-bind claim of no TServer's
	// StatefulSet: get statefulsets (uncached), then patch persistentvolumeclaims (hand the claim
	// back: selected-node removed).
	must(t, c.admin.Get(ctx, client.ObjectKeyFromObject(nodeObj), nodeObj)) // the agent changed it
	delete(nodeObj.Labels, tarsv1beta1.LabelSupportLocalVolume)
	must(t, c.admin.Update(ctx, nodeObj))
	handedBack := claim("delay-bind-shop-pay-0", "pay", tarsv1beta1.DelayBindVolumeName, nil)
	until("handed a claim back to the scheduler", func() bool {
		pvc := &corev1.PersistentVolumeClaim{}
		return c.admin.Get(ctx, client.ObjectKeyFromObject(handedBack), pvc) == nil && pvc.Annotations[annSelectedNode] == ""
	})
}

// warned says whether the agent reported a Warning about claim, as a series if series.
func warned(ctx context.Context, c *agentCluster, ns, claim string, series bool) bool {
	list := &eventsv1.EventList{}
	if err := c.admin.List(ctx, list, client.InNamespace(ns)); err != nil {
		return false
	}
	return slices.ContainsFunc(list.Items, func(e eventsv1.Event) bool {
		return e.Regarding.Name == claim && e.Type == corev1.EventTypeWarning && (!series || e.Series != nil)
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
