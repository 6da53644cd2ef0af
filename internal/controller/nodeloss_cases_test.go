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

// Node loss in odd cases adversarial reviews found: renamed nodes, hostnames that differ from
// node names or change, Nodes held by finalizers, forged annotations. Each spec failed before
// its fix.

import (
	"errors"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// lossNode creates a Ready Node named name whose kubernetes.io/hostname is hostname, and waits
// until the manager's cache has it.
func lossNode(name, hostname string) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: map[string]string{corev1.LabelHostname: hostname},
	}}
	Expect(k8sClient.Create(ctx, node)).To(Succeed())
	setReady(node, corev1.ConditionTrue)
	DeferCleanup(func() {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx,
			&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}))).To(Succeed())
	})
	Eventually(func() error { return reconciler.Get(ctx, client.ObjectKey{Name: name}, &corev1.Node{}) },
		timeout, interval).Should(Succeed())
}

// deleteLossNode deletes the Node named name and waits until the manager's cache misses it.
func deleteLossNode(name string) {
	Expect(k8sClient.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}})).To(Succeed())
	Eventually(func() error { return reconciler.Get(ctx, client.ObjectKey{Name: name}, &corev1.Node{}) },
		timeout, interval).Should(Satisfy(apierrors.IsNotFound))
}

// removeHostnameLabel removes the kubernetes.io/hostname label of the Node named name, as a
// confused administrator might, and waits until the manager's cache has the change.
func removeHostnameLabel(name string) {
	node := &corev1.Node{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: name}, node)).To(Succeed())
	patch := client.MergeFrom(node.DeepCopy())
	delete(node.Labels, corev1.LabelHostname)
	Expect(k8sClient.Patch(ctx, node, patch)).To(Succeed())
	Eventually(func() error {
		got := &corev1.Node{}
		Expect(reconciler.Get(ctx, client.ObjectKey{Name: name}, got)).To(Succeed())
		if got.Labels[corev1.LabelHostname] != "" {
			return errors.New("not in the cache yet")
		}
		return nil
	}, timeout, interval).Should(Succeed())
}

// reconcileOnce reconciles ts once, as the manager would.
func reconcileOnce(ts *tarsv1beta1.TServer) {
	Eventually(func() error {
		_, err := reconciler.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ts)})
		return err
	}, timeout, interval).Should(Succeed())
}

var _ = Describe("Node loss, odd cases", func() {
	// The claim names the node it was first scheduled to (A); the node was later renamed (A's
	// Node deleted, the same machine registered as "twin" with A's hostname). While twin lives the
	// replica is (rightly) kept. When twin's Node is deleted, the grace must start then: instead,
	// the replica is freed at once, because the grace is counted for A, missed long ago.
	It("keeps the grace when the node that holds a renamed node's volume is deleted", func() {
		ns := newNamespace()
		ts := tarslogIn(ns)
		nodeA := ns + "-a"
		lossNode(nodeA, nodeA)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		p := placeReplica(ts, "remote-log-dir", 0, nodeA, true)

		By("renaming node A: its Node deleted, the machine registered again as twin with A's hostname")
		deleteLossNode(nodeA)
		twin := ns + "-twin"
		lossNode(twin, nodeA)
		podOn(ts, 0, twin, p)
		reconcileOnce(ts)
		passGrace(ts)
		Expect(untouched(p.claim)()).To(BeTrue())
		Expect(untouched(p.volume)()).To(BeTrue())

		By("deleting twin's Node: it may register again within the grace, so nothing may be freed yet")
		deleteLossNode(twin)
		reconcileOnce(ts)
		Consistently(untouched(p.volume), 2*time.Second, interval).Should(BeTrue(),
			"the volume on twin was freed at once after twin's Node was deleted, within the grace")
		Expect(untouched(p.claim)()).To(BeTrue())
	})

	// The sweeper keys a node it cannot find by the volume's hostname, but only a Node's name is
	// ever cleared from missedNodes. A node whose hostname label differs from its name, deleted
	// once and re-registered within the grace (what the grace is for), has its volumes deleted
	// at once the next time its Node is deleted, however long after.
	It("keeps the grace of a node whose hostname differs from its name, the second time it is deleted", func() {
		ns := newNamespace()
		name, hostname := ns+"-node", ns+"-host"
		lossNode(name, hostname)
		released := unclaimedVolume(ns+"-kept", hostname, corev1.VolumeReleased)
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, released))).To(Succeed()) })

		By("deleting the Node and bringing it back within the grace: nothing is deleted")
		deleteLossNode(name)
		_, err := reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(untouched(released)()).To(BeTrue())
		lossNode(name, hostname)
		_, err = reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(untouched(released)()).To(BeTrue())

		By("a long time later, deleting the Node again: its grace starts now")
		nodeLossClock.SetTime(nodeLossClock.Now().Add(10 * nodeLossGrace))
		_, err = reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		deleteLossNode(name)
		_, err = reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(untouched(released)()).To(BeTrue(),
			"the volume was deleted the moment its node's Node object was deleted, within the grace")
	})

	// A claim that does not name its node (bound directly to a volume made beforehand; always so
	// on a node whose name is no label value, longer than 63 characters) is resolved to a node by
	// its volume's hostname once, and the answer is kept for good. Resolved while the node's Node
	// was missing (a manager that started while the node re-registered), the hostname is taken
	// for the node's name forever: the replica on the living node is reported gone-but-blocked,
	// polled every 5 s, and freed with no grace when the node's Node is deleted.
	It("finds the node of an unnamed claim that came back under a name other than its hostname", func() {
		ns := newNamespace()
		ts := tarslogIn(ns)
		hostname := ns + "-host"
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		By("a replica bound to a volume on a node whose Node is missing when the manager first looks")
		p := placeReplica(ts, "remote-log-dir", 0, hostname, false)
		reconcileOnce(ts)

		By("the node registering again, named other than its hostname, and Ready")
		name := ns + "-node"
		lossNode(name, hostname)
		podOn(ts, 0, name, p)
		passGrace(ts)
		Expect(untouched(p.claim)()).To(BeTrue())
		time.Sleep(time.Second)
		whileReady := conditionOf(ts, tarsv1beta1.ConditionNodesAvailable)()

		By("deleting the Node: the grace starts now")
		deleteLossNode(name)
		reconcileOnce(ts)
		time.Sleep(2 * time.Second)
		Expect([]any{whileReady.Status, untouched(p.volume)()}).To(Equal([]any{metav1.ConditionTrue, true}),
			"[NodesAvailable while the node is Ready, volume untouched just after its Node's deletion]; the condition said: %s",
			whileReady.Message)
	})

	// A Node being deleted but held by a finalizer, still Ready (its kubelet running the
	// replica), is judged deleted: after the grace its replica's pod is force-deleted and its
	// claim and volume freed, although the Node exists and is Ready.
	It("frees nothing on a Node that exists and is Ready, even one being deleted", func() {
		ns := newNamespace()
		ts := tarslogIn(ns)
		name := ns + "-held"
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name},
			Finalizers: []string{"example.com/hold"}}}
		Expect(k8sClient.Create(ctx, node)).To(Succeed())
		DeferCleanup(func() {
			got := &corev1.Node{}
			if k8sClient.Get(ctx, client.ObjectKey{Name: name}, got) == nil {
				got.Finalizers = nil
				Expect(client.IgnoreNotFound(k8sClient.Update(ctx, got))).To(Succeed())
			}
		})
		setReady(node, corev1.ConditionTrue)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		p := placeReplica(ts, "remote-log-dir", 0, name, true)
		pod := podOn(ts, 0, name, p)

		Expect(k8sClient.Delete(ctx, node)).To(Succeed())
		setReady(node, corev1.ConditionTrue) // its kubelet still reports in
		passGrace(ts)
		passGrace(ts)
		Consistently(untouched(pod), 2*time.Second, interval).Should(BeTrue(),
			"the pod of a Ready node was force-deleted")
		Expect(untouched(p.claim)()).To(BeTrue())
	})
})

var _ = Describe("Node loss, forged inputs", func() {
	// The scheduler's selected-node annotation is free text that whoever may edit claims in the
	// namespace can set. A value that is no valid object name ("a/b", "50%") is missed like a
	// deleted node, and once the grace has passed, reading it from the API server fails with an
	// error that is not NotFound: every reconcile of the TServer fails from then on, so its
	// status (Ready, VolumesBound, NodesAvailable) is never written again.
	It("keeps reconciling a server one of whose claims names a node that cannot exist", func() {
		ns := newNamespace()
		ts := tarslogIn(ns)
		nodeA := ns + "-a"
		lossNode(nodeA, nodeA)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ts))).To(Succeed()) })
		p := placeReplica(ts, "remote-log-dir", 0, nodeA, true)
		patch := client.MergeFrom(p.claim.DeepCopy())
		p.claim.Annotations["volume.kubernetes.io/selected-node"] = "a/b"
		Expect(k8sClient.Patch(ctx, p.claim, patch)).To(Succeed())
		Eventually(func() error {
			got := &corev1.PersistentVolumeClaim{}
			Expect(reconciler.Get(ctx, client.ObjectKeyFromObject(p.claim), got)).To(Succeed())
			if got.Annotations["volume.kubernetes.io/selected-node"] != "a/b" {
				return errors.New("not in the cache yet")
			}
			return nil
		}, timeout, interval).Should(Succeed())
		_, err := reconciler.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ts)})
		Expect(err).NotTo(HaveOccurred())
		nodeLossClock.SetTime(nodeLossClock.Now().Add(nodeLossGrace + time.Second))
		_, err = reconciler.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ts)})
		Expect(err).NotTo(HaveOccurred(), "the reconcile fails, and keeps failing, on a forged annotation")
	})
})

// A replica whose node is tainted out-of-service and not Ready but that is not freed (its volume
// may be on another node) makes the condition's reason NodeNotReady, which it is not.
func TestNodesAvailableReasonOfBlockedOutOfService(t *testing.T) {
	ts := &tarsv1beta1.TServer{ObjectMeta: metav1.ObjectMeta{Name: "tars-tarslog"}}
	c := nodesAvailable(ts, []nodeWait{{ordinal: 0, node: "n1",
		state:   nodeState{verdict: nodeGone, reason: tarsv1beta1.ReasonNodeOutOfService},
		blocked: "volume v may also be on node n2, which is not gone"}})
	if c.Reason != tarsv1beta1.ReasonNodeOutOfService {
		t.Errorf("reason = %s, want %s (the node is out of service, not merely NotReady); message %q", c.Reason,
			tarsv1beta1.ReasonNodeOutOfService, c.Message)
	}
}

var _ = Describe("Node loss, hostname labels changed", func() {
	// A claim that does not name its node is pinned by volumeNode to the volume's hostname when no
	// Node carries it. A living, Ready node named other than its hostname whose hostname label is
	// removed (or changed) then counts as gone under both keys: its name is never looked up, the
	// hostname matches no Node, and after the grace the replica's volume and claim are deleted
	// while the node still runs the replica.
	It("frees nothing on a Ready node whose hostname label was removed", func() {
		ns := newNamespace()
		ts := tarslogIn(ns)
		name, hostname := ns+"-node", ns+"-host"
		lossNode(name, hostname)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		p := placeReplica(ts, "remote-log-dir", 0, hostname, false)
		podOn(ts, 0, name, p)
		reconcileOnce(ts)
		passGrace(ts)
		Expect(untouched(p.claim)()).To(BeTrue())

		By("removing the node's hostname label; the Node stays, Ready")
		removeHostnameLabel(name)
		reconcileOnce(ts)
		passGrace(ts)
		passGrace(ts)
		Consistently(untouched(p.volume), 2*time.Second, interval).Should(BeTrue(),
			"the volume of a replica on a Ready Node was freed")
		Expect(untouched(p.claim)()).To(BeTrue())
	})

	// The sweeper judges a volume's node by its hostname alone: a living, Ready Node whose
	// hostname label is removed (or changed) counts as gone once the grace has passed, and the
	// volumes no claim holds there are deleted although their node runs, and its agent with it.
	It("sweeps no volume of a Ready node whose hostname label was removed", func() {
		ns := newNamespace()
		name := ns + "-node"
		lossNode(name, name)
		released := unclaimedVolume(ns+"-released", name, corev1.VolumeReleased)
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, released))).To(Succeed()) })
		removeHostnameLabel(name)
		_, err := reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		nodeLossClock.SetTime(nodeLossClock.Now().Add(nodeLossGrace + time.Second))
		_, err = reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(untouched(released)()).To(BeTrue(), "a volume of a Ready Node was swept as lost")
	})
})

// A Node held by a finalizer, being deleted for long while Ready (a long drain), that goes
// NotReady (a kubelet restart, a partition) is judged gone at once: its grace is counted from the
// deletion, while it was Ready and running its pods, not from when it was first missing.
func TestJudgeNodeBeingDeletedCountsGraceFromNotReady(t *testing.T) {
	now := time.Now()
	deleted := metav1.NewTime(now.Add(-time.Hour))
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "n1", DeletionTimestamp: &deleted},
		Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionUnknown, LastTransitionTime: metav1.NewTime(now.Add(-time.Second)),
		}}},
	}
	if s := judgeNode(node, now, DefaultNodeLossGrace, now); s.verdict == nodeGone {
		t.Errorf("a Node being deleted that went NotReady a second ago is gone at once (since %s): no grace", s.since)
	}
}
