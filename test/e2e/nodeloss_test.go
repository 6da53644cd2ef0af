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

package e2e

import (
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

// The node-loss specs lose nodes of their own, labelled poolLabel=lossPool; the other specs'
// servers keep off them (awayFromLossPool).
const (
	poolLabel = "e2e.tars.io/pool"
	lossPool  = "node-loss"
)

// lossNodes are the nodes the node-loss specs add and lose.
var lossNodes = []string{"node-5", "node-6", "node-7"}

// awayFromLossPool keeps a server off the nodes the node-loss specs lose.
var awayFromLossPool = corev1.NodeSelectorRequirement{
	Key: poolLabel, Operator: corev1.NodeSelectorOpNotIn, Values: []string{lossPool},
}

// inLossPool is tarslog with its replicas on different nodes of the loss pool.
func inLossPool(ns string) *tarsv1beta1.TServer {
	ts := tarslog(ns)
	ts.Spec.K8S.NotStacked = true
	ts.Spec.K8S.NodeSelector = []corev1.NodeSelectorRequirement{
		{Key: poolLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{lossPool}},
	}
	return ts
}

// cordon marks node unschedulable or schedulable again, as `kubectl cordon` and `uncordon` do.
func cordon(node string, unschedulable bool) {
	Expect(cluster.Cordon(ctx, node, unschedulable)).To(Succeed())
}

// nodeReadyStatus reads the status of node's Ready condition.
func nodeReadyStatus(node string) func() corev1.ConditionStatus {
	return func() corev1.ConditionStatus {
		n := &corev1.Node{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Name: node}, n)).To(Succeed())
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status
			}
		}
		return ""
	}
}

// eventNotes lists the notes of the events with reason about an object of kind and name.
func eventNotes(kind, name, reason string) func() []string {
	return func() []string {
		list := &eventsv1.EventList{}
		Expect(k8sClient.List(ctx, list)).To(Succeed())
		var notes []string
		for _, e := range list.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason {
				notes = append(notes, e.Note)
			}
		}
		return notes
	}
}

// uidOf reads the UID of a claim, empty when it does not exist.
func uidOf(ns, claim string) func() types.UID {
	return func() types.UID {
		if pvc := getClaim(ns, claim); pvc != nil {
			return pvc.UID
		}
		return ""
	}
}

// relDir is the directory of a volume of ts relative to a node's host root, as events name it.
func relDir(ts *tarsv1beta1.TServer, volume string) string {
	return filepath.Join(ts.Namespace, ts.Spec.App+"."+ts.Spec.Server, volume)
}

var _ = Describe("Node loss on a local cluster", Ordered, func() {
	var ns string
	BeforeAll(func() {
		By("adding the nodes these specs lose")
		nodes := make([]localcluster.Node, 0, len(lossNodes))
		for _, name := range lossNodes {
			nodes = append(nodes, localcluster.Node{Name: name, Labels: map[string]string{
				"tars.io/node": "true", tarsv1beta1.LabelSupportLocalVolume: "true", poolLabel: lossPool,
			}})
		}
		Expect(cluster.AddNodes(ctx, nodes...)).To(Succeed())
	})
	BeforeEach(func() {
		ns = newNamespace()
		By("working in namespace " + ns)
	})

	It("frees nothing on a node that is only NotReady and says why; frees at once on the out-of-service taint; "+
		"reports the data left behind when the node comes back", func() {
		ts := inLossPool(ns)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		lost, survivor := nodes[0], nodes[1]
		left := sentinel(hostDir(lost, ts, "remote-log-dir"))
		kept := sentinel(hostDir(survivor, ts, "remote-log-dir"))
		claim := claimName("remote-log-dir", ts, 0)
		oldClaim, oldVolume := getClaim(ns, claim), volumeOf(ns, claim)
		survivorPod := getPod(ns, ts.Name+"-1")

		By("powering " + lost + " off: its Node turns NotReady, and nothing is freed")
		Expect(cluster.PowerOff(ctx, lost)).To(Succeed())
		Eventually(nodeReadyStatus(lost), 2*timeout, interval).ShouldNot(Equal(corev1.ConditionTrue))
		Eventually(condition(ts, "NodesAvailable"), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", "NodeNotReady"),
			HaveField("Message", ContainSubstring("replica "+ts.Name+"-0 on node "+lost+": the node is not Ready since")),
			HaveField("Message", ContainSubstring("node.kubernetes.io/out-of-service"))))
		Eventually(eventNotes("TServer", ts.Name, "NodeNotReady"),
			timeout, interval).Should(ContainElement(ContainSubstring(lost)))
		Consistently(uidOf(ns, claim), 3*nodeLossGrace, interval).Should(Equal(oldClaim.UID))
		Expect(volumeOf(ns, claim).UID).To(Equal(oldVolume.UID))

		By("tainting " + lost + " out of service, as an administrator who knows it is down: freed without a grace")
		Expect(k8sClient.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: lost}},
			client.RawPatch(types.MergePatchType, []byte(`{"spec":{"taints":[{"key":"node.kubernetes.io/out-of-service",`+
				`"value":"nodeshutdown","effect":"NoExecute"}]}}`)),
		)).To(Succeed())
		Eventually(uidOf(ns, claim), timeout, interval).ShouldNot(Or(Equal(oldClaim.UID), BeEmpty()))
		moved := waitRunning(ts, 2, "remote-log-dir")
		Expect(moved[0]).NotTo(BeElementOf(lost, survivor))
		Expect(volumeOf(ns, claim).Labels[corev1.LabelHostname]).To(Equal(moved[0]))
		Expect(eventNotes("TServer", ts.Name, "FreedReplica")()).To(ContainElement(And(
			ContainSubstring(lost), ContainSubstring(ts.Name+"-0"), ContainSubstring(relDir(ts, "remote-log-dir")))))
		Expect(eventNotes("PersistentVolumeClaim", claim, "FreedReplica")()).To(ContainElement(ContainSubstring(lost)))
		Eventually(condition(ts, "NodesAvailable"), timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))

		By("leaving the survivor as it was")
		Expect(moved[1]).To(Equal(survivor))
		Expect(getPod(ns, ts.Name+"-1").UID).To(Equal(survivorPod.UID))
		Expect(kept()).To(Equal([]byte("precious")))

		By("powering " + lost + " on again: the freed replica's directory is reported, never removed")
		Expect(k8sClient.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: lost}},
			client.RawPatch(types.MergePatchType, []byte(`{"spec":{"taints":null}}`)))).To(Succeed())
		Expect(cluster.PowerOn(ctx, lost)).To(Succeed())
		Eventually(eventNotes("Node", lost, "OrphanedDirectory"), timeout, interval).Should(
			ContainElement(ContainSubstring(relDir(ts, "remote-log-dir"))))
		Consistently(left, 2*gcGrace, interval).Should(Equal([]byte("precious")))
	})

	It("brings a deleted node's servers back on other nodes, keeps a server whose nodeLossPolicy is Wait for the node, "+
		"and leaves the survivors as they were", func() {
		By("placing the servers with the nodes cordoned but one, then two")
		ts := inLossPool(ns)
		cordon(lossNodes[2], true)
		DeferCleanup(cordon, lossNodes[2], false)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		lost, survivor := nodes[0], nodes[1]
		cordon(survivor, true)
		DeferCleanup(cordon, survivor, false)

		waits := tarslog(ns)
		waits.Spec.Server, waits.Spec.K8S.Replicas = "keeper"+strings.TrimPrefix(ns, "e2e-"), 1
		waits.Name = tarsv1beta1.ResourceName(waits.Spec.App, waits.Spec.Server)
		waits.Spec.K8S.NodeSelector = inLossPool(ns).Spec.K8S.NodeSelector
		waits.Spec.K8S.NodeLossPolicy = tarsv1beta1.NodeLossWait
		Expect(k8sClient.Create(ctx, waits)).To(Succeed())

		hostNet := &tarsv1beta1.TServer{
			ObjectMeta: metav1.ObjectMeta{Name: "demo-hostnet", Namespace: ns},
			Spec: tarsv1beta1.TServerSpec{
				App: "demo", Server: "hostnet", SubType: tarsv1beta1.SubTypeNormal,
				Normal:  &tarsv1beta1.TServerNormal{Ports: []tarsv1beta1.TServerPort{{Name: "http", Port: 18080, IsTcp: true}}},
				Release: &tarsv1beta1.TServerRelease{ID: "v1", Image: "demo/hostnet:v1"},
				K8S: tarsv1beta1.TServerK8S{Replicas: 1, HostNetwork: true,
					NodeSelector: inLossPool(ns).Spec.K8S.NodeSelector},
			},
		}
		Expect(k8sClient.Create(ctx, hostNet)).To(Succeed())
		Expect(waitRunning(waits, 1, "remote-log-dir")).To(Equal([]string{lost}))
		Expect(waitRunning(hostNet, 1, tarsv1beta1.DelayBindVolumeName)).To(Equal([]string{lost}))
		cordon(survivor, false)
		cordon(lossNodes[2], false)

		waiting := sentinel(hostDir(lost, waits, "remote-log-dir"))
		kept := sentinel(hostDir(survivor, ts, "remote-log-dir"))
		claim, waitingClaim := claimName("remote-log-dir", ts, 0), claimName("remote-log-dir", waits, 0)
		oldClaim, oldWaitingClaim := getClaim(ns, claim), getClaim(ns, waitingClaim)
		oldPin := getClaim(ns, claimName(tarsv1beta1.DelayBindVolumeName, hostNet, 0))
		survivorPod := getPod(ns, ts.Name+"-1")

		By("powering " + lost + " off and deleting its Node, as when a machine is removed for good")
		Expect(cluster.PowerOff(ctx, lost)).To(Succeed())
		Expect(k8sClient.Delete(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: lost}})).To(Succeed())

		Eventually(uidOf(ns, claim), timeout, interval).ShouldNot(Or(Equal(oldClaim.UID), BeEmpty()))
		moved := waitRunning(ts, 2, "remote-log-dir")
		Expect(moved).To(Equal([]string{lossNodes[2], survivor}), "notStacked: the free node of the pool")
		Expect(eventNotes("TServer", ts.Name, "FreedReplica")()).To(ContainElement(And(
			ContainSubstring("node "+lost), ContainSubstring(ts.Name+"-0"), ContainSubstring(relDir(ts, "remote-log-dir")))))

		By("bringing the host-network server back through a fresh delay-bind claim")
		Eventually(uidOf(ns, claimName(tarsv1beta1.DelayBindVolumeName, hostNet, 0)), timeout, interval).
			ShouldNot(Or(Equal(oldPin.UID), BeEmpty()))
		Expect(waitRunning(hostNet, 1, tarsv1beta1.DelayBindVolumeName)[0]).NotTo(Equal(lost))

		By("keeping the server whose nodeLossPolicy is Wait, and saying so")
		Eventually(condition(waits, "NodesAvailable"), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", "NodeLossPolicyWait"),
			HaveField("Message", ContainSubstring(lost))))
		Expect(eventNotes("TServer", waits.Name, "NodeLossPolicyWait")()).To(ContainElement(ContainSubstring(lost)))
		Consistently(uidOf(ns, waitingClaim), 2*nodeLossGrace, interval).Should(Equal(oldWaitingClaim.UID))

		By("leaving the survivor as it was")
		Expect(getPod(ns, ts.Name+"-1").UID).To(Equal(survivorPod.UID))
		Expect(kept()).To(Equal([]byte("precious")))

		By("running the waiting server on its data again once " + lost + " is back")
		Expect(cluster.PowerOn(ctx, lost)).To(Succeed())
		Expect(waitRunning(waits, 1, "remote-log-dir")).To(Equal([]string{lost}))
		Expect(waiting()).To(Equal([]byte("precious")))
		Eventually(condition(waits, "NodesAvailable"), timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))
	})
})
