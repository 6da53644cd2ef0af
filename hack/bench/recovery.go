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

package main

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

const scenarioRecovery = "6 recovery"

// recoveryTarget bounds the time a replica with node-local volumes takes to run elsewhere after
// its Node is deleted, less the manager's --node-loss-grace, against Kubernetes alone.
const recoveryTarget = 1.2

// recoveryReplicas are the replicas of the scenario's server, as in the seed's tarslog: one is
// lost with its node, the other stays where it is, and the anti-affinity keeps the lost one off
// the survivor's node.
const recoveryReplicas = 2

// recoveryRun is what one run of the recovery scenario measured.
type recoveryRun struct {
	// total is from the Node's deletion until the lost replica runs, Ready, on another node, its
	// claims (if any) bound to new volumes.
	total time.Duration
	// afterPodGone is the part of total after the lost pod was gone: freed by the manager, or
	// collected by kube-controller-manager's pod garbage collector.
	afterPodGone time.Duration
}

// recovery runs scenario 6 on a cluster of its own: a replica's node is powered off and its
// Node deleted, and the time until the replica runs on another node is measured with the
// manager freeing it from its node-local volumes, and with Kubernetes alone for the same
// StatefulSet without node-local claims, in o.recoveryPairs pairs.
func recovery(ctx context.Context, o options) ([]result, error) {
	nodes := make([]localcluster.Node, 0, o.recoveryNodes)
	for i := range o.recoveryNodes {
		nodes = append(nodes, recoveryNode(i+1))
	}
	fmt.Printf("Starting a local cluster with %d nodes for the recovery scenario...\n", o.recoveryNodes)
	// Inside the other scenarios' state directory: that cluster cleans only what it owns.
	cluster, err := localcluster.Start(ctx, clusterOptions(o, filepath.Join(o.stateDir, "recovery"), nodes))
	if err != nil {
		return nil, err
	}
	defer func() { _ = cluster.Stop() }()
	manager, err := cluster.StartManager(ctx, o.operator, nil, "--node-loss-grace="+o.nodeLossGrace.String())
	if err != nil {
		return nil, err
	}
	agents, err := cluster.StartAgents(ctx, o.agent, "--gc-grace-period="+o.gcGrace.String())
	if err != nil {
		return nil, err
	}
	c, obs, err := clients(ctx, cluster.Config)
	if err != nil {
		return nil, err
	}
	ro := o
	ro.replicas, ro.volumes = recoveryReplicas, 1
	b := &bench{o: ro, cluster: cluster, c: c, obs: obs, manager: manager, agents: agents}

	grace := o.nodeLossGrace.Seconds()
	type pair struct {
		ours, alone recoveryRun
		row         result
	}
	var pairs []pair
	var results []result
	for i := 1; i <= o.recoveryPairs; i++ {
		// The manager's run first: a cluster's first node loss, if it costs more, costs the
		// manager, not Kubernetes alone.
		fmt.Printf("Scenario 6, pair %d of %d: a TServer's replica with a tLocalVolume, its Node deleted, "+
			"freed by the manager after %s...\n", i, o.recoveryPairs, o.nodeLossGrace)
		ours, err := b.recoverOnce(ctx, fmt.Sprintf("recovered%d", i), true)
		if err != nil {
			return results, err
		}
		fmt.Printf("Scenario 6, pair %d of %d: Kubernetes alone, the same StatefulSet without node-local claims, "+
			"its pod's Node deleted...\n", i, o.recoveryPairs)
		alone, err := b.recoverOnce(ctx, fmt.Sprintf("alone%d", i), false)
		if err != nil {
			return results, err
		}
		row := ratio(scenarioRecovery, fmt.Sprintf("pair %d: Running elsewhere, less the grace", i),
			ours.total.Seconds()-grace, alone.total.Seconds(), "s", recoveryTarget)
		row.Target, row.Met = "", nil // the median pair below is the figure
		fmt.Printf("  pair %d: (%.2f s - %.0f s grace) / %.2f s = %.2f\n",
			i, ours.total.Seconds(), grace, alone.total.Seconds(), row.Ratio)
		pairs = append(pairs, pair{ours: ours, alone: alone, row: row})
		results = append(results, row)
	}
	median := slices.SortedFunc(slices.Values(pairs), func(a, b pair) int {
		return cmp.Compare(a.row.Ratio, b.row.Ratio)
	})[(len(pairs)-1)/2]
	results = append(results,
		result{Scenario: scenarioRecovery, Metric: "median pair: with the manager, grace included",
			Value: median.ours.total.Seconds(), Unit: "s"},
		ratio(scenarioRecovery, "median pair: Running elsewhere, less the grace",
			median.row.Value, median.row.Bound, "s", recoveryTarget))
	// Where the two differ once the lost pod is gone: the manager's replica needs a new claim
	// and volume, Kubernetes alone's only a node (a diagnosis, no target).
	after := ratio(scenarioRecovery, "median pair: from the lost pod's deletion",
		median.ours.afterPodGone.Seconds(), median.alone.afterPodGone.Seconds(), "s", recoveryTarget)
	after.Target, after.Met = "", nil
	return append(results, after), nil
}

// nodeLabelOn is the value of the labels that let an agent run on a node and make volumes there.
const nodeLabelOn = "true"

// recoveryNode is the i-th node of the recovery scenario's cluster, labelled as the other
// scenarios' nodes: nodes lost in a run are replaced by new ones, with new names.
func recoveryNode(i int) localcluster.Node {
	return localcluster.Node{Name: fmt.Sprintf("node-%d", i), Labels: map[string]string{
		"tars.io/node": nodeLabelOn, tarsv1beta1.LabelSupportLocalVolume: nodeLabelOn,
	}}
}

// recoverOnce runs a server in namespace name (a TServer when ours, else the StatefulSet without
// node-local claims), powers off the node of its replica 0 and deletes its Node, and measures
// until the replica runs on another node. Then it deletes the namespace and adds a new node in
// place of the lost one.
func (b *bench) recoverOnce(ctx context.Context, name string, ours bool) (recoveryRun, error) {
	ts, err := b.deployRecoveryServer(ctx, name, ours)
	if err != nil {
		return recoveryRun{}, err
	}
	l := lostReplica{key: client.ObjectKey{Namespace: name, Name: ts.Name + "-0"}, oldClaims: map[string]types.UID{}}
	old := &corev1.Pod{}
	if err := b.obs.Get(ctx, l.key, old); err != nil {
		return recoveryRun{}, err
	}
	l.node, l.oldPod = old.Spec.NodeName, old.UID
	if ours {
		for _, m := range ts.Spec.K8S.Mounts {
			claim := fmt.Sprintf("%s-%s-0", m.Name, ts.Name)
			pvc := &corev1.PersistentVolumeClaim{}
			if err := b.obs.Get(ctx, client.ObjectKey{Namespace: name, Name: claim}, pvc); err != nil {
				return recoveryRun{}, err
			}
			l.oldClaims[claim] = pvc.UID
		}
	}
	if err := waitQuiet(ctx, b.quietCPU()); err != nil {
		return recoveryRun{}, err
	}
	run, err := b.timeRecovery(ctx, l)
	if err != nil {
		return run, err
	}
	b.printEvents(ctx, name)
	if err := b.cleanUp(ctx, name); err != nil {
		return run, err
	}
	replacement := recoveryNode(len(b.cluster.Nodes) + 1)
	if err := b.cluster.AddNodes(ctx, replacement); err != nil {
		return run, err
	}
	fmt.Printf("  added node %s in place of %s\n", replacement.Name, l.node)
	return run, nil
}

// deployRecoveryServer creates namespace name and in it a bench TServer (ours) or the
// StatefulSet and Service the controller would make of it, without node-local claims; and waits
// until it runs.
func (b *bench) deployRecoveryServer(ctx context.Context, name string, ours bool) (*tarsv1beta1.TServer, error) {
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		return nil, err
	}
	ts := b.tserver(name, name, 0)
	objects := []client.Object{ts}
	if !ours {
		svc, sts := withoutNodeLocalClaims(ts)
		objects = []client.Object{svc, sts}
	}
	for _, obj := range objects {
		if err := b.c.Create(ctx, obj); err != nil {
			return nil, err
		}
	}
	return ts, b.waitRecoveryServer(ctx, ts, ours)
}

// lostReplica is the replica a recovery run loses: its pod, its node, and the UIDs of its pod and
// node-local claims there (none without).
type lostReplica struct {
	key       client.ObjectKey
	node      string
	oldPod    types.UID
	oldClaims map[string]types.UID
}

// timeRecovery powers off the lost replica's node and deletes its Node, and measures until the
// replica runs, Ready, on another node, with new claims bound in place of its old ones.
func (b *bench) timeRecovery(ctx context.Context, l lostReplica) (recoveryRun, error) {
	// The machine dies, then an administrator (or a cloud's node controller) deletes its Node.
	if err := b.cluster.PowerOff(ctx, l.node); err != nil {
		return recoveryRun{}, err
	}
	start := time.Now()
	if err := b.c.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: l.node}}); err != nil {
		return recoveryRun{}, err
	}
	milestones := map[string]time.Duration{}
	mark := func(what string, done bool) {
		if _, seen := milestones[what]; done && !seen {
			milestones[what] = time.Since(start)
		}
	}
	order := []string{"lost pod gone", "new claims exist", "new claims bound", "new pod scheduled"}
	if len(l.oldClaims) == 0 {
		order = []string{"lost pod gone", "new pod scheduled"}
	}
	deadline := start.Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		pod := &corev1.Pod{}
		if err := b.obs.Get(ctx, l.key, pod); client.IgnoreNotFound(err) != nil {
			return recoveryRun{}, err
		}
		replaced := pod.UID != "" && pod.UID != l.oldPod
		mark("lost pod gone", pod.UID != l.oldPod)
		mark("new pod scheduled", replaced && pod.Spec.NodeName != "")
		exist, bound := 0, 0
		for claim, old := range l.oldClaims {
			pvc := &corev1.PersistentVolumeClaim{}
			key := client.ObjectKey{Namespace: l.key.Namespace, Name: claim}
			if err := b.obs.Get(ctx, key, pvc); client.IgnoreNotFound(err) != nil {
				return recoveryRun{}, err
			}
			if pvc.UID != "" && pvc.UID != old {
				exist++
				if pvc.Status.Phase == corev1.ClaimBound {
					bound++
				}
			}
		}
		mark("new claims exist", exist == len(l.oldClaims))
		mark("new claims bound", bound == len(l.oldClaims))
		if replaced && pod.Spec.NodeName != l.node && podReady(pod) && bound == len(l.oldClaims) {
			run := recoveryRun{total: time.Since(start)}
			run.afterPodGone = run.total - milestones["lost pod gone"]
			fmt.Printf("  %s: replica %s running on %s %s after node %s was deleted\n",
				l.key.Namespace, l.key.Name, pod.Spec.NodeName, run.total.Round(10*time.Millisecond), l.node)
			for _, what := range order {
				fmt.Printf("    %-20s %s\n", what, milestones[what].Round(10*time.Millisecond))
			}
			return run, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return recoveryRun{}, fmt.Errorf("%s: replica %s not running on another node 5 minutes after node %s was deleted",
		l.key.Namespace, l.key.Name, l.node)
}

// withoutNodeLocalClaims is the Service and StatefulSet the controller makes of ts, without
// their node-local claims: the same pods, placed by the same rules (node affinity,
// anti-affinity, spreading), with nothing that ties them to a node.
func withoutNodeLocalClaims(ts *tarsv1beta1.TServer) (*corev1.Service, *appsv1.StatefulSet) {
	svc, sts := expand.Service(ts), expand.StatefulSet(ts)
	claims := sets.New[string]()
	for _, t := range sts.Spec.VolumeClaimTemplates {
		claims.Insert(t.Name)
	}
	sts.Spec.VolumeClaimTemplates = nil
	spec := &sts.Spec.Template.Spec
	spec.Volumes = slices.DeleteFunc(spec.Volumes, func(v corev1.Volume) bool { return claims.Has(v.Name) })
	for i := range spec.Containers {
		spec.Containers[i].VolumeMounts = slices.DeleteFunc(spec.Containers[i].VolumeMounts,
			func(m corev1.VolumeMount) bool { return claims.Has(m.Name) })
	}
	return svc, sts
}

// waitRecoveryServer waits until every replica of ts runs, Ready, and, with claims, every claim
// of the namespace is bound.
func (b *bench) waitRecoveryServer(ctx context.Context, ts *tarsv1beta1.TServer, claims bool) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 3*time.Minute, true,
		func(ctx context.Context) (bool, error) {
			pods := &corev1.PodList{}
			if err := b.obs.List(ctx, pods, client.InNamespace(ts.Namespace), client.UnsafeDisableDeepCopy); err != nil {
				return false, err
			}
			ready := 0
			for i := range pods.Items {
				if podReady(&pods.Items[i]) {
					ready++
				}
			}
			if ready < int(ts.Spec.K8S.Replicas) || !claims {
				return ready >= int(ts.Spec.K8S.Replicas), nil
			}
			pvcs := &corev1.PersistentVolumeClaimList{}
			if err := b.obs.List(ctx, pvcs, client.InNamespace(ts.Namespace), client.UnsafeDisableDeepCopy); err != nil {
				return false, err
			}
			bound := 0
			for _, pvc := range pvcs.Items {
				if pvc.Status.Phase == corev1.ClaimBound {
					bound++
				}
			}
			return bound == int(ts.Spec.K8S.Replicas)*len(ts.Spec.K8S.Mounts), nil
		})
}

// podReady says whether pod runs and is Ready.
func podReady(pod *corev1.Pod) bool {
	if pod.Status.Phase != corev1.PodRunning || !pod.DeletionTimestamp.IsZero() {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
