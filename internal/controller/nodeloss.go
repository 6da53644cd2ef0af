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
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/util/workqueue"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

// A replica whose node-local claims are bound to volumes on a node cannot run anywhere else.
// When that node is gone, the manager frees the replica: it deletes the volume objects (their
// directories stay on the lost disk), the claims and the pod, and the StatefulSet controller
// makes them anew on another node. Kubernetes' own signals say when a node is gone: its Node
// object deleted (for longer than NodeLossGrace, so that a node re-registering at once keeps its
// volumes), or the taint node.kubernetes.io/out-of-service, with which an administrator states
// that a node is shut down (non-graceful node shutdown), on a node that is not Ready. A node that
// is only NotReady may be partitioned and still run the old pod: nothing is freed then.

// DefaultNodeLossGrace is how long a node-local volume's Node must have been deleted before its
// replica is freed.
const DefaultNodeLossGrace = 2 * time.Minute

// claimNodeIndex indexes node-local claims by the node the scheduler picked for them, to find
// the servers a Node's change concerns.
const claimNodeIndex = "tars.nodeName"

// nodeHostnameIndex indexes Nodes by their kubernetes.io/hostname label, which node-local
// volumes' affinity names.
const nodeHostnameIndex = "tars.hostname"

// blockedRecheck is how often a replica whose node is gone but that may not be freed is looked at
// again, besides when a Node it may be on changes.
const blockedRecheck = 30 * time.Second

// claimNode is the node a node-local claim was scheduled to, as the scheduler wrote it (or as the
// claim-labelling policy or an agent mirrored it), or "". Whoever may edit claims may write
// anything there: a value that is no valid Node name names no node.
func claimNode(pvc *corev1.PersistentVolumeClaim) string {
	node := pvc.Annotations[volumehelpers.AnnSelectedNode]
	if node == "" {
		node = pvc.Labels[tarsv1beta1.LabelSelectedNode]
	}
	if len(apivalidation.NameIsDNSSubdomain(node, false)) > 0 {
		return ""
	}
	return node
}

// nodeVerdict is what the manager makes of a node that replicas are held to.
type nodeVerdict int

const (
	nodeAvailable nodeVerdict = iota
	// nodeWaiting: not Ready, or tainted out-of-service but Ready, or deleted within the grace.
	nodeWaiting
	// nodeGone: deleted past the grace, or tainted out-of-service and not Ready.
	nodeGone
)

// nodeState is a node's verdict, why, and since when.
type nodeState struct {
	verdict nodeVerdict
	// a NodesAvailable reason; for nodeGone, tarsv1beta1.ReasonNodeDeleted or
	// tarsv1beta1.ReasonNodeOutOfService
	reason string
	since  time.Time // when the node went not Ready, or was first missed; zero if unknown
	freeAt time.Time // for a deleted node within the grace: when its replicas are freed
}

// judgeNode is the state of a node given its object (nil when there is none) and, for a node
// without an object, when it was first missed. A Node being deleted (held by a finalizer) counts
// as deleted once it is not Ready, from the later of its deletion and its going not Ready: while
// Ready, its kubelet still runs pods.
func judgeNode(node *corev1.Node, missedSince time.Time, grace time.Duration, now time.Time) nodeState {
	var ready *corev1.NodeCondition
	if node != nil {
		for i := range node.Status.Conditions {
			if node.Status.Conditions[i].Type == corev1.NodeReady {
				ready = &node.Status.Conditions[i]
			}
		}
	}
	notReady := ready == nil || ready.Status != corev1.ConditionTrue
	if node == nil || !node.DeletionTimestamp.IsZero() {
		if node != nil {
			missedSince = node.DeletionTimestamp.Time
			if ready != nil && ready.LastTransitionTime.After(missedSince) {
				missedSince = ready.LastTransitionTime.Time
			}
		}
		switch {
		case !notReady:
			return nodeState{verdict: nodeWaiting, reason: tarsv1beta1.ReasonNodeDeleted, since: missedSince}
		case now.Sub(missedSince) >= grace:
			return nodeState{verdict: nodeGone, reason: tarsv1beta1.ReasonNodeDeleted, since: missedSince}
		}
		return nodeState{verdict: nodeWaiting, reason: tarsv1beta1.ReasonNodeDeleted, since: missedSince,
			freeAt: missedSince.Add(grace)}
	}
	var since time.Time
	if ready != nil {
		since = ready.LastTransitionTime.Time
	}
	outOfService := slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == corev1.TaintNodeOutOfService
	})
	switch {
	case outOfService && notReady:
		return nodeState{verdict: nodeGone, reason: tarsv1beta1.ReasonNodeOutOfService, since: since}
	case outOfService:
		return nodeState{verdict: nodeWaiting, reason: tarsv1beta1.ReasonNodeOutOfServiceButReady, since: since}
	case notReady:
		return nodeState{verdict: nodeWaiting, reason: tarsv1beta1.ReasonNodeNotReady, since: since}
	}
	return nodeState{verdict: nodeAvailable}
}

// missedNodes remembers when the manager first found each node it needs missing, by name, and
// each hostname of a volume's affinity that no Node had (hostnameKey): the grace of a deleted
// node counts from then. An entry is forgotten whenever a Node of that name or hostname is seen,
// so that a node that comes back and goes again gets its whole grace again. A manager that
// starts afresh counts from its start, which only delays freeing.
type missedNodes struct {
	mu    sync.Mutex
	since map[string]time.Time
}

// missed records that node is missing at now, if not already, and says since when it is.
func (m *missedNodes) missed(node string, now time.Time) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.since == nil {
		m.since = map[string]time.Time{}
	}
	if t, ok := m.since[node]; ok {
		return t
	}
	m.since[node] = now
	return now
}

// found forgets that the nodes were missing: they exist (again).
func (m *missedNodes) found(nodes ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, node := range nodes {
		delete(m.since, node)
	}
}

// hostnameKey is the missedNodes key of a kubernetes.io/hostname (no Node name holds "=").
func hostnameKey(hostname string) string {
	return corev1.LabelHostname + "=" + hostname
}

// seen forgets that node, whose object exists, or the hostname it has, was missing; also under
// the hostname as a name, which stands for the node of a claim that does not name its node
// (volumeNode).
func (m *missedNodes) seen(node *corev1.Node) {
	keys := []string{node.Name}
	if h := node.Labels[corev1.LabelHostname]; h != "" {
		keys = append(keys, h, hostnameKey(h))
	}
	m.found(keys...)
}

// replicaPin is a replica held to a node by its node-local claims there.
type replicaPin struct {
	ordinal int32
	node    string
	claims  []*corev1.PersistentVolumeClaim
	data    bool // a claim is of a data volume, not delay-bind
}

// nodeWait is a replica held to a node that is gone or not Ready, and not freed (yet).
type nodeWait struct {
	ordinal int32
	node    string
	state   nodeState
	// policyWait: the node is gone, and the server's nodeLossPolicy keeps the replica waiting.
	policyWait bool
	// blocked says why a replica whose node is gone was not freed, if it was not.
	blocked string
}

// reason is the NodesAvailable reason of the wait.
func (w nodeWait) reason() string {
	if w.policyWait {
		return tarsv1beta1.ReasonNodeLossPolicyWait
	}
	return w.state.reason
}

// pins lists the replicas below replicas that are held to a node by node-local claims of the
// server's current claim templates, one entry per replica and node.
func (r *TServerReconciler) pins(ctx context.Context, ts *tarsv1beta1.TServer, replicas int32,
	claims []corev1.PersistentVolumeClaim) []replicaPin {
	local := expand.LocalClaimTemplateNames(ts)
	type key struct {
		ordinal int32
		node    string
	}
	byKey := map[key]*replicaPin{}
	for i := range claims {
		pvc := &claims[i]
		template, ordinal, ok := claimOrdinal(pvc.Name, ts.Name)
		if !ok || ordinal >= replicas || !slices.Contains(local, template) ||
			pvc.Labels[tarsv1beta1.LabelLocalVolume] != template {
			continue
		}
		node := claimNode(pvc)
		if node == "" && pvc.Spec.VolumeName != "" {
			node = r.volumeNode(ctx, pvc.Spec.VolumeName)
		}
		if node == "" {
			continue
		}
		k := key{ordinal, node}
		pin := byKey[k]
		if pin == nil {
			pin = &replicaPin{ordinal: ordinal, node: node}
			byKey[k] = pin
		}
		pin.claims = append(pin.claims, pvc)
		pin.data = pin.data || template != tarsv1beta1.DelayBindVolumeName
	}
	out := make([]replicaPin, 0, len(byKey))
	for _, pin := range byKey {
		out = append(out, *pin)
	}
	slices.SortFunc(out, func(a, b replicaPin) int {
		return cmp.Or(cmp.Compare(a.ordinal, b.ordinal), strings.Compare(a.node, b.node))
	})
	return out
}

// volumeNode is the node a bound claim's volume is on, for a claim that does not say which node
// it was scheduled to (bound directly to a volume made beforehand, before any agent labelled
// it): the name of a Node with the kubernetes.io/hostname the volume requires, preferably one
// that is not gone, or that hostname (a kubelet's default name) when no Node has it now. The
// hostname is remembered (volumes' node affinity is immutable), the Node looked up each time.
func (r *TServerReconciler) volumeNode(ctx context.Context, volume string) string {
	hostname, ok := r.volumeHostnames.Load(volume)
	if !ok {
		pv := &corev1.PersistentVolume{}
		if err := r.APIReader.Get(ctx, client.ObjectKey{Name: volume}, pv); err != nil {
			if !apierrors.IsNotFound(err) {
				logf.FromContext(ctx).Error(err, "Failed to read a claim's volume to find its node", "volume", volume)
			}
			return ""
		}
		hostname, _ = r.volumeHostnames.LoadOrStore(volume, volumeHostname(pv))
	}
	h := hostname.(string)
	if h == "" {
		return ""
	}
	nodes := &corev1.NodeList{}
	if err := r.List(ctx, nodes, client.MatchingFields{nodeHostnameIndex: h}); err != nil || len(nodes.Items) == 0 {
		return h
	}
	now := r.now()
	for i := range nodes.Items {
		if judgeNode(&nodes.Items[i], now, r.nodeLossGrace(), now).verdict != nodeGone {
			return nodes.Items[i].Name
		}
	}
	return nodes.Items[0].Name
}

// volumeHostname is the kubernetes.io/hostname a node-local volume's node affinity requires, or "".
func volumeHostname(pv *corev1.PersistentVolume) string {
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, req := range term.MatchExpressions {
			if req.Key == corev1.LabelHostname && req.Operator == corev1.NodeSelectorOpIn && len(req.Values) == 1 {
				return req.Values[0]
			}
		}
	}
	return ""
}

// reconcileNodeLoss frees the replicas held to nodes that are gone, as the server's
// nodeLossPolicy allows, and records in o the replicas that wait on a node.
func (r *TServerReconciler) reconcileNodeLoss(ctx context.Context, ts *tarsv1beta1.TServer, o *observed) error {
	pins := r.pins(ctx, ts, *expand.StatefulSet(ts).Spec.Replicas, o.claims)
	o.pins = pins
	if len(pins) == 0 {
		return nil
	}
	now := r.now()
	states := map[string]nodeState{}
	var policy *tarsv1beta1.NodeLossPolicy // read from the API server before data is freed
	for _, pin := range pins {
		state, ok := states[pin.node]
		if !ok {
			var node *corev1.Node
			cached := &corev1.Node{}
			err := r.Get(ctx, client.ObjectKey{Name: pin.node}, cached)
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return err
			default:
				node = cached
			}
			state = judgeNode(node, r.missedSince(ctx, pin.node, node, now), r.nodeLossGrace(), now)
			states[pin.node] = state
		}
		switch {
		case state.verdict == nodeAvailable:
			continue
		case state.verdict == nodeWaiting:
			// A deleted node's replica that the policy keeps says so from the start.
			keep := pin.data && !state.freeAt.IsZero() && ts.Spec.K8S.NodeLossPolicy == tarsv1beta1.NodeLossWait
			o.nodeWaits = append(o.nodeWaits, nodeWait{ordinal: pin.ordinal, node: pin.node, state: state, policyWait: keep})
			if !state.freeAt.IsZero() && !keep {
				o.requeueAt(state.freeAt.Sub(now))
			}
			continue
		case pin.data && ts.Spec.K8S.NodeLossPolicy == tarsv1beta1.NodeLossWait:
			o.nodeWaits = append(o.nodeWaits, nodeWait{ordinal: pin.ordinal, node: pin.node, state: state, policyWait: true})
			continue
		}
		if pin.data && policy == nil {
			// The cache may not have an edit to Wait made a moment ago.
			fresh := &tarsv1beta1.TServer{}
			if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(ts), fresh); err != nil {
				return client.IgnoreNotFound(err)
			}
			if fresh.UID != ts.UID || !fresh.DeletionTimestamp.IsZero() {
				return nil
			}
			policy = &fresh.Spec.K8S.NodeLossPolicy
		}
		if pin.data && *policy == tarsv1beta1.NodeLossWait {
			o.nodeWaits = append(o.nodeWaits, nodeWait{ordinal: pin.ordinal, node: pin.node, state: state, policyWait: true})
			continue
		}
		blocked, retry, err := r.freeReplica(ctx, ts, pin)
		if err != nil {
			return err
		}
		if blocked != "" {
			o.nodeWaits = append(o.nodeWaits, nodeWait{ordinal: pin.ordinal, node: pin.node, state: state, blocked: blocked})
			o.requeueAt(cmp.Or(retry, blockedRecheck))
		}
	}
	return nil
}

// freeReplica deletes, after reading from the API server that the node is gone and that the
// node each volume is on is gone too, the replica's volume objects on the node (made Retain
// first, so that no agent removes their directories should the node come back), its claims
// there, and its pod if it is on that node or waits to be scheduled. It says why, if something
// of the replica is left on the node, and when to look again (0: blockedRecheck).
func (r *TServerReconciler) freeReplica(ctx context.Context, ts *tarsv1beta1.TServer,
	pin replicaPin) (string, time.Duration, error) {
	log := logf.FromContext(ctx).WithValues("replica", pin.ordinal, "node", pin.node)
	now := r.now()
	var node *corev1.Node
	fresh := &corev1.Node{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Name: pin.node}, fresh)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return "", 0, err
	default:
		node = fresh
	}
	state := judgeNode(node, r.missedSince(ctx, pin.node, node, now), r.nodeLossGrace(), now)
	if state.verdict != nodeGone {
		log.Info("Did not free a replica: the API server shows its node is not gone", "reason", state.reason)
		return "the API server shows the node is not gone (" + state.reason + ")", 0, nil
	}

	// First every check, then every deletion: a replica is freed whole or not at all.
	if why, err := r.podElsewhere(ctx, ts, pin); err != nil || why != "" {
		return why, 0, err
	}
	plan, blocked, retry, err := r.planFree(ctx, pin)
	if err != nil || blocked != "" {
		return blocked, retry, err
	}

	var left []string // "<volume> (<path>)" of the volumes deleted, for the event
	var freedClaims []*corev1.PersistentVolumeClaim
	for _, f := range plan {
		if f.pvc.Spec.VolumeName == "" {
			if err := r.handBack(ctx, f.pvc, pin.node); err != nil {
				return "", 0, err
			}
			continue
		}
		if f.pv != nil {
			if err := r.deleteStrandedVolume(ctx, f.pv, pin.node); err != nil {
				return "", 0, err
			}
			left = append(left, fmt.Sprintf("%s (%s)", f.pv.Name, volumePath(f.pv)))
		}
		if err := r.Delete(ctx, f.pvc, client.Preconditions{UID: &f.pvc.UID}); err != nil && !apierrors.IsNotFound(err) {
			return "", 0, err
		}
		freedClaims = append(freedClaims, f.pvc)
	}
	podFreed, err := r.deleteStrandedPod(ctx, ts, pin, len(plan) > 0)
	if err != nil {
		return "", 0, err
	}
	if len(plan) == 0 {
		// The claims went in an earlier pass (which said so), or none was scheduled there.
		if podFreed {
			log.Info("Deleted the pod of a replica held to a lost node", "reason", state.reason)
		}
		return "", 0, nil
	}

	replica := fmt.Sprintf("%s-%d", ts.Name, pin.ordinal)
	why := fmt.Sprintf("node %s is gone (its Node object was deleted %s ago)", pin.node,
		now.Sub(state.since).Round(time.Second))
	if state.reason == tarsv1beta1.ReasonNodeOutOfService {
		why = fmt.Sprintf("node %s is tainted %s and not Ready", pin.node, corev1.TaintNodeOutOfService)
	}
	note := fmt.Sprintf("Freed replica %s: %s; it starts on another node with new, empty volumes", replica, why)
	if len(left) > 0 {
		note += "; the data of volume(s) " + strings.Join(left, ", ") + " stays on that node's disk"
	}
	log.Info("Freed a replica from a lost node", "reason", state.reason, "volumes", left,
		"claims", len(freedClaims), "pod", podFreed)
	r.Recorder.Eventf(ts, nil, corev1.EventTypeWarning, "FreedReplica", "Delete", "%s", truncate(note, maxEventNote))
	for _, pvc := range freedClaims {
		r.Recorder.Eventf(pvc, nil, corev1.EventTypeWarning, "FreedReplica", "Delete", "%s", truncate(note, maxEventNote))
	}
	replicasFreed.WithLabelValues(state.reason).Inc()
	return "", 0, nil
}

// podElsewhere says why the replica's pod, read from the API server, shows that the replica is
// not held to the lost node, if it does: it is bound to another node that is not gone (its claims'
// node, or its volumes' hostname, was misread: a hostname label changed, say).
func (r *TServerReconciler) podElsewhere(ctx context.Context, ts *tarsv1beta1.TServer, pin replicaPin) (string, error) {
	pod := &corev1.Pod{}
	name := fmt.Sprintf("%s-%d", ts.Name, pin.ordinal)
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ts.Namespace, Name: name}, pod); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if pod.Spec.NodeName == "" || pod.Spec.NodeName == pin.node {
		return "", nil
	}
	node := &corev1.Node{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: pod.Spec.NodeName}, node); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	now := r.now()
	if judgeNode(node, now, r.nodeLossGrace(), now).verdict == nodeGone {
		return "", nil
	}
	return "its pod " + name + " is on node " + pod.Spec.NodeName + ", which is not gone", nil
}

// freeing is a claim of a replica to free, and the volume it is bound to (nil: none, or gone
// already).
type freeing struct {
	pvc *corev1.PersistentVolumeClaim
	pv  *corev1.PersistentVolume
}

// planFree reads the replica's claims on the lost node from the API server, and the volumes they
// are bound to, and lists what to free, or says why the replica may not be freed now and when to
// look again.
func (r *TServerReconciler) planFree(ctx context.Context, pin replicaPin) ([]freeing, string, time.Duration, error) {
	var plan []freeing
	var blocked []string
	var retry time.Duration
	for _, cached := range pin.claims {
		pvc := &corev1.PersistentVolumeClaim{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(cached), pvc); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return nil, "", 0, err
		}
		switch {
		case pvc.UID != cached.UID || claimNode(pvc) != "" && claimNode(pvc) != pin.node:
			blocked = append(blocked, "claim "+pvc.Name+" changed meanwhile") // look again
		case !pvc.DeletionTimestamp.IsZero():
			// Being deleted: the pod is what holds it.
		case pvc.Spec.VolumeName == "":
			plan = append(plan, freeing{pvc: pvc})
		default:
			pv, why, after, err := r.strandedVolume(ctx, pvc, pin.node)
			if err != nil {
				return nil, "", 0, err
			}
			if why != "" {
				blocked = append(blocked, why)
				if after > 0 && (retry == 0 || after < retry) {
					retry = after
				}
				continue
			}
			plan = append(plan, freeing{pvc: pvc, pv: pv})
		}
	}
	if len(blocked) > 0 {
		return nil, strings.Join(blocked, "; "), retry, nil
	}
	return plan, "", 0, nil
}

// strandedVolume reads the volume a claim is bound to from the API server and says why it may
// not be freed from the lost node, if it may not, and when to look again: it must be bound to this
// claim, and the node it is on gone (volumeNodeState), as the cache and then the API server show.
// A volume that no longer exists is nil.
func (r *TServerReconciler) strandedVolume(ctx context.Context, pvc *corev1.PersistentVolumeClaim,
	lost string) (*corev1.PersistentVolume, string, time.Duration, error) {
	pv := &corev1.PersistentVolume{}
	if err := r.APIReader.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", 0, nil
		}
		return nil, "", 0, err
	}
	why, retry := "", time.Duration(0)
	switch {
	case pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID:
		why = "volume " + pv.Name + " is not bound to claim " + pvc.Name
	case volumeHostname(pv) == "":
		why = "volume " + pv.Name + " is not tied to a node by its hostname"
	default:
		var err error
		if why, retry, err = r.volumeNotGone(ctx, pv); err != nil {
			return nil, "", 0, err
		}
	}
	if why != "" {
		logf.FromContext(ctx).Info("Did not free a claim from a lost node", "claim", pvc.Name, "node", lost, "why", why)
		return nil, why, retry, nil
	}
	return pv, "", 0, nil
}

// volumeNotGone says why the node node-local volume pv is on is not gone, if it is not, and when
// to look again: first from the cache, then, to confirm that it is gone, from the API server.
func (r *TServerReconciler) volumeNotGone(ctx context.Context,
	pv *corev1.PersistentVolume) (string, time.Duration, error) {
	now := r.now()
	var state nodeState
	var other string
	for _, reader := range []client.Reader{r.Client, r.APIReader} {
		nodes, err := candidateNodes(ctx, reader, pv)
		if err != nil {
			return "", 0, err
		}
		if state, other = r.volumeNodeState(pv, nodes, now); other != "" || state.verdict != nodeGone {
			break
		}
	}
	switch {
	case other != "":
		return fmt.Sprintf("volume %s may be on node %s, which is not gone (%s)", pv.Name, other,
			cmp.Or(state.reason, "Ready")), 0, nil
	case state.verdict != nodeGone:
		return fmt.Sprintf("no Node has had the hostname %s of volume %s since %s; it is freed at %s unless one registers",
				volumeHostname(pv), pv.Name, state.since.UTC().Format(time.RFC3339), state.freeAt.UTC().Format(time.RFC3339)),
			state.freeAt.Sub(now), nil
	}
	return "", 0, nil
}

// candidateNodes reads the Nodes a node-local volume may be on: those its affinity may match and
// those named like a hostname it requires. For a volume whose affinity requires only hostnames,
// as the agents make them, those are the Nodes with these hostnames or names; for any other, all
// Nodes.
func candidateNodes(ctx context.Context, reader client.Reader, pv *corev1.PersistentVolume) ([]corev1.Node, error) {
	hostnames := sets.New[string]()
	simple := pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil
	if simple {
		for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
			for _, req := range term.MatchExpressions {
				if req.Key != corev1.LabelHostname || req.Operator != corev1.NodeSelectorOpIn {
					simple = false
				}
				hostnames.Insert(req.Values...)
			}
			simple = simple && len(term.MatchFields) == 0 && len(term.MatchExpressions) > 0
		}
	}
	list := &corev1.NodeList{}
	if !simple {
		err := reader.List(ctx, list)
		return list.Items, err
	}
	selector, err := labels.NewRequirement(corev1.LabelHostname, selection.In, sets.List(hostnames))
	if err != nil {
		return nil, err
	}
	if err := reader.List(ctx, list,
		client.MatchingLabelsSelector{Selector: labels.NewSelector().Add(*selector)}); err != nil {
		return nil, err
	}
	nodes := list.Items
	for _, h := range sets.List(hostnames) {
		if len(apivalidation.NameIsDNSSubdomain(h, false)) > 0 ||
			slices.ContainsFunc(nodes, func(n corev1.Node) bool { return n.Name == h }) {
			continue
		}
		node := &corev1.Node{}
		switch err := reader.Get(ctx, client.ObjectKey{Name: h}, node); {
		case err == nil:
			nodes = append(nodes, *node)
		case !apierrors.IsNotFound(err):
			return nil, err
		}
	}
	return nodes, nil
}

// volumeNodeState judges the node a node-local volume is on from nodes: gone when every Node its
// affinity matches, or named like its hostname (whose hostname label an administrator may have
// changed), is gone; or, when there is none, once there has been none for the grace (counted
// from when the manager first found none: a node renamed and then deleted gets its whole grace).
// other names such a Node that is not gone, with that node's state.
func (r *TServerReconciler) volumeNodeState(pv *corev1.PersistentVolume, nodes []corev1.Node,
	now time.Time) (state nodeState, other string) {
	hostname := volumeHostname(pv)
	key := hostnameKey(hostname)
	matched := false
	for i := range nodes {
		n := &nodes[i]
		if n.Name != hostname && volumehelpers.CheckNodeAffinity(pv, n.Labels) != nil {
			continue
		}
		s := judgeNode(n, now, r.nodeLossGrace(), now)
		if s.verdict != nodeGone {
			return s, n.Name
		}
		if !matched {
			state, matched = s, true
		}
	}
	if matched {
		r.missedNodes.found(key)
		return state, ""
	}
	return judgeNode(nil, r.missedNodes.missed(key, now), r.nodeLossGrace(), now), ""
}

// deleteStrandedVolume makes a volume on a lost node Retain, so that its directory is kept
// should the node come back, and deletes it; the protection finalizer keeps it until its claim
// is gone.
func (r *TServerReconciler) deleteStrandedVolume(ctx context.Context, pv *corev1.PersistentVolume, node string) error {
	if !pv.DeletionTimestamp.IsZero() {
		return nil
	}
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain ||
		pv.Annotations[tarsv1beta1.AnnotationFreedFromNode] != node {
		patch := client.MergeFromWithOptions(pv.DeepCopy(), client.MergeFromWithOptimisticLock{})
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		metav1.SetMetaDataAnnotation(&pv.ObjectMeta, tarsv1beta1.AnnotationFreedFromNode, node)
		if err := r.Patch(ctx, pv, patch); err != nil {
			return err
		}
	}
	err := r.Delete(ctx, pv, client.Preconditions{UID: &pv.UID, ResourceVersion: &pv.ResourceVersion})
	return client.IgnoreNotFound(err)
}

// handBack returns a claim that is not bound yet, scheduled to a node that is gone, to the
// scheduler, as an agent does with a claim it cannot serve.
func (r *TServerReconciler) handBack(ctx context.Context, pvc *corev1.PersistentVolumeClaim, node string) error {
	if claimNode(pvc) != node {
		return nil
	}
	patch := client.MergeFromWithOptions(pvc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	delete(pvc.Annotations, volumehelpers.AnnSelectedNode)
	delete(pvc.Labels, tarsv1beta1.LabelSelectedNode)
	if err := r.Patch(ctx, pvc, patch); err != nil {
		return client.IgnoreNotFound(err)
	}
	logf.FromContext(ctx).Info("Handed a claim scheduled to a lost node back to the scheduler",
		"claim", pvc.Name, "node", node)
	return nil
}

// deleteStrandedPod deletes the replica's pod if it is on the lost node (at once: no kubelet is
// left to end it), or if it is not scheduled yet and waited for claims just freed (waited), and
// says whether it did. A pod that the StatefulSet made afterwards gets the claims made anew.
func (r *TServerReconciler) deleteStrandedPod(ctx context.Context, ts *tarsv1beta1.TServer, pin replicaPin,
	waited bool) (bool, error) {
	pod := &corev1.Pod{}
	name := fmt.Sprintf("%s-%d", ts.Name, pin.ordinal)
	if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ts.Namespace, Name: name}, pod); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	opts := []client.DeleteOption{client.Preconditions{UID: &pod.UID}}
	switch pod.Spec.NodeName {
	case pin.node:
		opts = append(opts, client.GracePeriodSeconds(0))
	case "":
		if !waited || !pod.DeletionTimestamp.IsZero() {
			return false, nil
		}
	default:
		return false, nil // running elsewhere: not this node's
	}
	if err := r.Delete(ctx, pod, opts...); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	return true, nil
}

// volumePath is where a node-local volume keeps its data on its node.
func volumePath(pv *corev1.PersistentVolume) string {
	switch {
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path
	}
	return "?"
}

// explain says what a wait is and what an administrator can do about it.
func (w nodeWait) explain() string {
	since := ""
	if !w.state.since.IsZero() {
		since = " since " + w.state.since.UTC().Format(time.RFC3339)
	}
	if w.blocked != "" {
		return "the node is gone (" + w.state.reason + since + ") but the replica is not freed: " + w.blocked
	}
	const act = "taint it " + corev1.TaintNodeOutOfService + "=nodeshutdown:NoExecute or delete its Node object"
	switch w.reason() {
	case tarsv1beta1.ReasonNodeLossPolicyWait:
		what := "the node is gone"
		if w.state.verdict != nodeGone {
			what = "the Node object is deleted"
		}
		return what + " (" + w.state.reason + since + ") and nodeLossPolicy is Wait: the replica waits for the " +
			"node to come back; to start it elsewhere with new, empty volumes, delete its claims and pod"
	case tarsv1beta1.ReasonNodeDeleted:
		if w.state.freeAt.IsZero() {
			return "the Node object is being deleted" + since + " but the node is Ready; nothing is freed while it is"
		}
		return "the Node object is deleted" + since + "; the replica is freed at " +
			w.state.freeAt.UTC().Format(time.RFC3339) + " unless the node registers again"
	case tarsv1beta1.ReasonNodeOutOfServiceButReady:
		return "the node is tainted " + corev1.TaintNodeOutOfService + " but Ready" + since +
			"; nothing is freed while it is Ready"
	case tarsv1beta1.ReasonNodeOutOfService:
		return "the node is out of service; its replica is being freed"
	}
	return "the node is not Ready" + since +
		" and may still run the replica, so nothing is moved; if the node is down, " + act
}

// missedSince is since when the manager misses the node named name, whose object is node (nil
// if it has none): now if it has one.
func (r *TServerReconciler) missedSince(ctx context.Context, name string, node *corev1.Node, now time.Time) time.Time {
	if node != nil {
		r.missedNodes.seen(node)
		return now
	}
	// A node's name is usually its hostname, which its volumes' affinity names.
	return r.missedNode(ctx, name, name, now)
}

// missedNode records that the node named name, of hostname, is missing at now, if not already,
// and says since when it is. The hostname is recorded too (volumeNodeState), unless another Node
// has it.
func (r *TServerReconciler) missedNode(ctx context.Context, name, hostname string, now time.Time) time.Time {
	since := r.missedNodes.missed(name, now)
	others := &corev1.NodeList{}
	if hostname != "" && r.List(ctx, others, client.MatchingFields{nodeHostnameIndex: hostname}) == nil &&
		len(others.Items) == 0 {
		r.missedNodes.missed(hostnameKey(hostname), now)
	}
	return since
}

// nodeLossGrace is NodeLossGrace, or DefaultNodeLossGrace when unset.
func (r *TServerReconciler) nodeLossGrace() time.Duration {
	if r.NodeLossGrace == nil {
		return DefaultNodeLossGrace
	}
	return *r.NodeLossGrace
}

// now is the reconciler's clock's time.
func (r *TServerReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock.Now()
}

// requeueAt asks for a reconcile within d.
func (o *observed) requeueAt(d time.Duration) {
	d = max(d, time.Second)
	if o.requeueAfter == 0 || d < o.requeueAfter {
		o.requeueAfter = d
	}
}

// nodeOnlyLoss strips a cached Node to what node loss reads (name, labels for volumes' node
// affinity, taints, the Ready condition without its heartbeat), so that the cache of a large
// cluster's Nodes stays small and heartbeats change nothing in it.
func nodeOnlyLoss(obj any) (any, error) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: node.Name, UID: node.UID, ResourceVersion: node.ResourceVersion, Labels: node.Labels,
		DeletionTimestamp: node.DeletionTimestamp, CreationTimestamp: node.CreationTimestamp,
	}}
	slim.Spec.Taints = node.Spec.Taints
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			c.LastHeartbeatTime = metav1.Time{}
			slim.Status.Conditions = []corev1.NodeCondition{c}
		}
	}
	return slim, nil
}

// nodeHandler enqueues the TServers with node-local claims scheduled to a Node that appears, goes,
// or changes in what node loss reads (nodeOnlyLoss), and keeps missedNodes.
func (r *TServerReconciler) nodeHandler(c client.Reader) handler.EventHandler {
	enqueue := func(ctx context.Context, node string, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		claims := &corev1.PersistentVolumeClaimList{}
		if err := c.List(ctx, claims, client.MatchingFields{claimNodeIndex: node}); err != nil {
			logf.FromContext(ctx).Error(err, "Failed to list the claims scheduled to a node", "node", node)
			return
		}
		for i := range claims.Items {
			for _, req := range tserverOfLabels(ctx, &claims.Items[i]) {
				q.Add(req)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent,
			q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.missedNodes.seen(e.Object.(*corev1.Node))
			enqueue(ctx, e.Object.GetName(), q)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent,
			q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			old, nu := e.ObjectOld.(*corev1.Node), e.ObjectNew.(*corev1.Node)
			// Also where a relist shows a Node deleted and made again as an update.
			r.missedNodes.seen(nu)
			if !equality.Semantic.DeepEqual(old.Spec.Taints, nu.Spec.Taints) ||
				!equality.Semantic.DeepEqual(old.Status.Conditions, nu.Status.Conditions) ||
				!equality.Semantic.DeepEqual(old.Labels, nu.Labels) || !old.DeletionTimestamp.Equal(nu.DeletionTimestamp) {
				enqueue(ctx, nu.Name, q)
				if judgeNode(nu, r.now(), r.nodeLossGrace(), r.now()).verdict != nodeAvailable {
					r.nodeGone()
				}
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent,
			q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.missedNode(ctx, e.Object.GetName(), e.Object.GetLabels()[corev1.LabelHostname], r.now())
			enqueue(ctx, e.Object.GetName(), q)
			r.nodeGone()
		},
	}
}
