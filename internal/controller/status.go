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

// The status of a TServer, computed from what a reconcile observed: replica counts and the
// conditions Ready, VolumesBound, VolumesHealthy and NodesAvailable. When it is written is
// progress.go's.

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	volumehelpers "k8s.io/component-helpers/storage/volume"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

const (
	// shownClaims is how many claims a condition's message names; it counts the rest.
	shownClaims = 5
	// maxProblemLength bounds how much of a node agent's report a condition quotes: the
	// annotation is free text on a claim.
	maxProblemLength = 512
	// maxEventNote is the longest note an events.k8s.io Event may have.
	maxEventNote = 1024
)

// computeStatus is the TServer's status given what a reconcile observed.
func computeStatus(ts *tarsv1beta1.TServer, o *observed) tarsv1beta1.TServerStatus {
	status := tarsv1beta1.TServerStatus{
		Selector:           labels.SelectorFromSet(expand.PodLabels(ts)).String(),
		ObservedGeneration: ts.Generation,
		Conditions:         slices.Clone(ts.Status.Conditions),
	}
	desiredReplicas := *expand.StatefulSet(ts).Spec.Replicas
	if sts := o.statefulSet; sts != nil {
		status.Replicas = sts.Status.Replicas
		status.ReadyReplicas = sts.Status.ReadyReplicas
		status.CurrentReplicas = sts.Status.CurrentReplicas
	}

	ready := metav1.Condition{Type: tarsv1beta1.ConditionReady, ObservedGeneration: ts.Generation}
	switch sts := o.statefulSet; {
	case len(o.conflicts) > 0:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, tarsv1beta1.ReasonConflict,
			strings.Join(o.conflicts, "; ")
	case o.recreating:
		ready.Status, ready.Reason = metav1.ConditionFalse, tarsv1beta1.ReasonRecreatingStatefulSet
		ready.Message = "the StatefulSet is being recreated with new claim templates; its pods keep running"
	case sts == nil || sts.Status.ObservedGeneration < sts.Generation:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, tarsv1beta1.ReasonProgressing,
			"the StatefulSet is being updated"
	case sts.Status.ReadyReplicas < desiredReplicas || sts.Status.Replicas != desiredReplicas:
		ready.Status, ready.Reason = metav1.ConditionFalse, tarsv1beta1.ReasonReplicasNotReady
		ready.Message = fmt.Sprintf("%d of %d replicas ready", sts.Status.ReadyReplicas, desiredReplicas)
	default:
		ready.Status, ready.Reason = metav1.ConditionTrue, tarsv1beta1.ReasonAllReplicasReady
		ready.Message = fmt.Sprintf("%d of %d replicas ready", sts.Status.ReadyReplicas, desiredReplicas)
		if ts.Spec.Release == nil {
			ready.Message += " (no release: the server has no pods)"
		}
	}
	status.VolumeNodes = volumeNodes(o.pins, desiredReplicas)
	meta.SetStatusCondition(&status.Conditions, ready)
	meta.SetStatusCondition(&status.Conditions, volumesBound(ts, desiredReplicas, o.claims, o.storageClassProblem))
	meta.SetStatusCondition(&status.Conditions, volumesHealthy(ts, o.claims))
	meta.SetStatusCondition(&status.Conditions, nodesAvailable(ts, o.nodeWaits))
	return status
}

// volumesBound says whether every claim the replicas need exists and is bound, and, if not and
// the storage class provisions nothing, why. Its work grows with the claims that exist, never
// with replicas (which an old object may have in billions): missing claims are counted, and
// only the first shownClaims of them are named.
func volumesBound(ts *tarsv1beta1.TServer, replicas int32, claims []corev1.PersistentVolumeClaim,
	storageClassProblem string) metav1.Condition {
	replicas = max(replicas, 0)
	templates := expand.ClaimTemplates(ts)
	bound := make(map[string]sets.Set[int32], len(templates)) // template -> ordinals with a bound claim
	for _, t := range templates {
		bound[t.Name] = sets.New[int32]()
	}
	selected := map[string]string{} // claim -> the node whose agent is to provision it
	refused := map[string]string{}  // claim -> why an agent handed it back
	for _, pvc := range claims {
		template, ordinal, ok := claimOrdinal(pvc.Name, ts.Name)
		if !ok || bound[template] == nil || ordinal >= replicas {
			continue
		}
		if pvc.Status.Phase == corev1.ClaimBound {
			bound[template].Insert(ordinal)
		}
		if _, local := pvc.Labels[tarsv1beta1.LabelLocalVolume]; local && pvc.Spec.VolumeName == "" {
			selected[pvc.Name] = pvc.Annotations[volumehelpers.AnnSelectedNode]
			why := strings.TrimSpace(pvc.Annotations[tarsv1beta1.AnnotationProvisioningRefused])
			if why != "" && pvc.Status.Phase != corev1.ClaimBound {
				refused[pvc.Name] = why
			}
		}
	}
	total := int64(len(templates)) * int64(replicas)
	pending := total
	var shown []string
	localPending := false
	for _, t := range templates {
		ordinals := bound[t.Name]
		pending -= int64(ordinals.Len())
		if _, local := t.Labels[tarsv1beta1.LabelLocalVolume]; local && int64(ordinals.Len()) < int64(replicas) {
			localPending = true
		}
		// At most len(ordinals) + shownClaims steps.
		for i := int32(0); i < replicas && len(shown) < shownClaims; i++ {
			if ordinals.Has(i) {
				continue
			}
			name := fmt.Sprintf("%s-%s-%d", t.Name, ts.Name, i)
			if node := selected[name]; node != "" {
				// Scheduled: a claim that stays so waits for an agent (is one running there?).
				name += " (on node " + node + ")"
			}
			if why := refused[name]; why != "" {
				// Its pod is scheduled again; on a cluster where only that node can take it, it
				// stays pending, and this says why.
				name += " (refused by " + truncate(why, maxProblemLength) + ")"
			}
			shown = append(shown, name)
		}
	}
	c := metav1.Condition{Type: tarsv1beta1.ConditionVolumesBound, ObservedGeneration: ts.Generation}
	if pending == 0 {
		c.Status, c.Reason = metav1.ConditionTrue, tarsv1beta1.ReasonAllClaimsBound
		c.Message = fmt.Sprintf("%d claim(s) bound", total)
		return c
	}
	c.Status, c.Reason = metav1.ConditionFalse, tarsv1beta1.ReasonClaimsPending
	c.Message = fmt.Sprintf("%d of %d claim(s) not bound yet: %s", pending, total, strings.Join(shown, ", "))
	if more := pending - int64(len(shown)); more > 0 {
		c.Message += fmt.Sprintf(" and %d more", more)
	}
	switch {
	case storageClassProblem != "" && localPending:
		c.Reason, c.Message = tarsv1beta1.ReasonStorageClassNotProvisioning, storageClassProblem+"; "+c.Message
	case len(refused) > 0:
		c.Reason = tarsv1beta1.ReasonProvisioningRefused
	}
	return c
}

// claimOrdinal reads a claim name the StatefulSet named server made from one of its claim
// templates, <template>-<server>-<ordinal>, back into template and ordinal.
func claimOrdinal(claim, server string) (template string, ordinal int32, ok bool) {
	i := strings.LastIndex(claim, "-"+server+"-")
	if i <= 0 {
		return "", 0, false
	}
	digits := claim[i+len(server)+2:]
	n, err := strconv.ParseInt(digits, 10, 32)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != digits {
		return "", 0, false
	}
	return claim[:i], int32(n), true
}

// volumesHealthy says whether any claim of the server carries a node agent's report that the
// directory of its bound volume is missing, naming the replica, the claim and the report of the
// first shownClaims of them.
func volumesHealthy(ts *tarsv1beta1.TServer, claims []corev1.PersistentVolumeClaim) metav1.Condition {
	type problem struct {
		ordinal int32
		claim   string
		report  string
	}
	var problems []problem
	for _, pvc := range claims {
		report, ok := pvc.Annotations[tarsv1beta1.AnnotationVolumeProblem]
		if !ok || !pvc.DeletionTimestamp.IsZero() {
			continue
		}
		_, ordinal, isReplica := claimOrdinal(pvc.Name, ts.Name)
		if !isReplica {
			ordinal = -1 // a claim of the server's labels that no replica made: named, listed last
		}
		problems = append(problems, problem{ordinal: ordinal, claim: pvc.Name, report: report})
	}
	c := metav1.Condition{Type: tarsv1beta1.ConditionVolumesHealthy, ObservedGeneration: ts.Generation}
	if len(problems) == 0 {
		c.Status, c.Reason = metav1.ConditionTrue, tarsv1beta1.ReasonAllVolumesHealthy
		c.Message = "no node agent reports a missing volume directory"
		return c
	}
	// In a stable order, so that an unchanged report writes nothing.
	slices.SortFunc(problems, func(a, b problem) int {
		if (a.ordinal < 0) != (b.ordinal < 0) {
			return cmp.Compare(b.ordinal, a.ordinal)
		}
		return cmp.Or(cmp.Compare(a.ordinal, b.ordinal), strings.Compare(a.claim, b.claim))
	})
	parts := make([]string, 0, min(len(problems), shownClaims))
	for _, p := range problems[:min(len(problems), shownClaims)] {
		report := strings.TrimSpace(p.report)
		if report == "" {
			report = "its volume's directory is missing"
		}
		who := "claim " + p.claim
		if p.ordinal >= 0 {
			who = fmt.Sprintf("replica %s-%d (claim %s)", ts.Name, p.ordinal, p.claim)
		}
		parts = append(parts, who+": "+truncate(report, maxProblemLength))
	}
	c.Status, c.Reason = metav1.ConditionFalse, tarsv1beta1.ReasonVolumeDirectoryMissing
	c.Message = fmt.Sprintf("%d claim(s) report a missing volume directory: %s", len(problems), strings.Join(parts, "; "))
	if len(problems) > shownClaims {
		c.Message += fmt.Sprintf(" and %d more", len(problems)-shownClaims)
	}
	return c
}

// truncate shortens s to at most n bytes, on a character boundary, marking the cut.
func truncate(s string, n int) string {
	const cut = "..."
	if len(s) <= n {
		return s
	}
	end := n - len(cut)
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + cut
}

// nodesAvailable says whether any replica waits on a node that is gone or not Ready, which, since
// when, and what an administrator can do.
func nodesAvailable(ts *tarsv1beta1.TServer, waits []nodeWait) metav1.Condition {
	c := metav1.Condition{Type: tarsv1beta1.ConditionNodesAvailable, ObservedGeneration: ts.Generation}
	if len(waits) == 0 {
		c.Status, c.Reason = metav1.ConditionTrue, tarsv1beta1.ReasonAllNodesAvailable
		c.Message = "no replica is held to a node that is gone or not Ready"
		return c
	}
	// The most pressing reason names the condition: a replica that waits for a person first.
	rank := []string{tarsv1beta1.ReasonNodeLossPolicyWait, tarsv1beta1.ReasonNodeDeleted,
		tarsv1beta1.ReasonNodeOutOfService, tarsv1beta1.ReasonNodeOutOfServiceButReady, tarsv1beta1.ReasonNodeNotReady}
	c.Status, c.Reason = metav1.ConditionFalse, tarsv1beta1.ReasonNodeNotReady
	for _, reason := range rank {
		if slices.ContainsFunc(waits, func(w nodeWait) bool { return w.reason() == reason }) {
			c.Reason = reason
			break
		}
	}
	parts := make([]string, 0, min(len(waits), shownClaims))
	for _, w := range waits[:min(len(waits), shownClaims)] {
		parts = append(parts, fmt.Sprintf("replica %s-%d on node %s: %s", ts.Name, w.ordinal, w.node, w.explain()))
	}
	c.Message = fmt.Sprintf("%d replica(s) held to a node that is gone or not Ready: %s", len(waits),
		strings.Join(parts, "; "))
	if len(waits) > shownClaims {
		c.Message += fmt.Sprintf(" and %d more", len(waits)-shownClaims)
	}
	return c
}

// shownReplicas is how many replicas status.volumeNodes names; it counts the rest.
const shownReplicas = 50

// volumeNodes is status.volumeNodes: the node(s) of each replica's node-local claims, in
// replica order ("-" for none), or "" for a server without node-local claims.
func volumeNodes(pins []replicaPin, replicas int32) string {
	if len(pins) == 0 {
		return ""
	}
	nodes := map[int32][]string{}
	for _, pin := range pins { // sorted by ordinal, then node
		nodes[pin.ordinal] = append(nodes[pin.ordinal], pin.node)
	}
	shown := min(replicas, shownReplicas)
	parts := make([]string, 0, shown+1)
	for i := range shown {
		if len(nodes[i]) == 0 {
			parts = append(parts, "-")
			continue
		}
		parts = append(parts, strings.Join(nodes[i], "+"))
	}
	if more := replicas - shown; more > 0 {
		parts = append(parts, fmt.Sprintf("(%d more)", more))
	}
	return strings.Join(parts, ",")
}
