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
	"fmt"
	"path"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/testutil"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

// nodeLossGrace is the suite's TServerReconciler.NodeLossGrace, on nodeLossClock.
const nodeLossGrace = 2 * time.Minute

// registerNode creates a Node with its hostname label and a Ready condition of status ready,
// and deletes it after the spec.
func registerNode(name string, ready corev1.ConditionStatus, taints ...corev1.Taint) *corev1.Node {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}},
		Spec:       corev1.NodeSpec{Taints: taints},
	}
	Expect(k8sClient.Create(ctx, node)).To(Succeed())
	setReady(node, ready)
	DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, node))).To(Succeed()) })
	return node
}

// setReady sets the node's Ready condition, as its kubelet or the node lifecycle controller does.
func setReady(node *corev1.Node, status corev1.ConditionStatus) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(node), node); err != nil {
			return err
		}
		now := metav1.Now()
		node.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: status, Reason: "Test", LastHeartbeatTime: now, LastTransitionTime: now,
		}}
		return k8sClient.Status().Update(ctx, node)
	})).To(Succeed())
}

// placed is a replica's claim of one volume, bound to a volume on a node.
type placed struct {
	claim  *corev1.PersistentVolumeClaim
	volume *corev1.PersistentVolume
}

// placeReplica makes what the StatefulSet controller, the scheduler, a node agent and the PV
// binder make for replica ordinal's claim of volume on node (envtest runs none of them): the
// claim, scheduled there (named says whether the claim names its node, as the scheduler's
// annotation does, or, bound directly to a volume made beforehand, does not), and a volume there
// bound to it.
func placeReplica(ts *tarsv1beta1.TServer, volume string, ordinal int, node string, named bool) placed {
	sts := expand.StatefulSet(ts)
	var tpl *corev1.PersistentVolumeClaim
	for i := range sts.Spec.VolumeClaimTemplates {
		if sts.Spec.VolumeClaimTemplates[i].Name == volume {
			tpl = &sts.Spec.VolumeClaimTemplates[i]
		}
	}
	Expect(tpl).NotTo(BeNil(), "no claim template %s", volume)
	pvName := tarsv1beta1.LocalVolumeName(ts.Namespace, volume, ts.Spec.App, ts.Spec.Server, node,
		tarsv1beta1.StorageClassName)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%s-%d", volume, ts.Name, ordinal), Namespace: ts.Namespace, Labels: tpl.Labels,
		},
		Spec: *tpl.Spec.DeepCopy(),
	}
	pvc.Spec.VolumeName = pvName
	if named {
		pvc.Annotations = map[string]string{volumehelpers.AnnSelectedNode: node}
	}
	Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName, Labels: tpl.Labels},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{
				Path: path.Join(tarsv1beta1.DefaultHostRoot, ts.Namespace, ts.Spec.App+"."+ts.Spec.Server, volume),
			}},
			ClaimRef:                      &corev1.ObjectReference{Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              tarsv1beta1.StorageClassName,
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
					}},
				}},
			}},
		},
	}
	Expect(k8sClient.Create(ctx, pv)).To(Succeed())
	pv.Status.Phase = corev1.VolumeBound
	Expect(k8sClient.Status().Update(ctx, pv)).To(Succeed())
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return err
		}
		pvc.Status.Phase = corev1.ClaimBound
		return k8sClient.Status().Update(ctx, pvc)
	})).To(Succeed())
	return placed{claim: pvc, volume: pv}
}

// podOn creates replica ordinal's pod of ts on node ("": not scheduled), mounting claims.
func podOn(ts *tarsv1beta1.TServer, ordinal int, node string, claims ...placed) *corev1.Pod {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%d", ts.Name, ordinal), Namespace: ts.Namespace, Labels: expand.PodLabels(ts),
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}
	for _, c := range claims {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
			Name: c.claim.Labels[tarsv1beta1.LabelLocalVolume],
			VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c.claim.Name},
			},
		})
	}
	Expect(k8sClient.Create(ctx, pod)).To(Succeed())
	return pod
}

// goneOrGoing says whether obj is deleted or being deleted (the protection finalizers keep
// claims and volumes until nothing uses them; envtest runs no controller that removes them).
func goneOrGoing(obj client.Object) func() bool {
	return func() bool {
		got := obj.DeepCopyObject().(client.Object)
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), got)
		return apierrors.IsNotFound(err) || err == nil && got.GetDeletionTimestamp() != nil
	}
}

// untouched says whether obj is still there, not being deleted, with the same UID.
func untouched(obj client.Object) func() bool {
	return func() bool {
		got := obj.DeepCopyObject().(client.Object)
		return k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), got) == nil && got.GetDeletionTimestamp() == nil &&
			got.GetUID() == obj.GetUID()
	}
}

// passGrace steps the node-loss clock past the grace and reconciles ts, as its requeue would.
func passGrace(ts *tarsv1beta1.TServer) {
	nodeLossClock.SetTime(nodeLossClock.Now().Add(nodeLossGrace + time.Second))
	Eventually(func() error {
		_, err := reconciler.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ts)})
		return err
	}, timeout, interval).Should(Succeed())
}

// eventNotes lists the notes of the events of reason in namespace ns about an object named name.
func eventNotes(ns, name, reason string) func() []string {
	return func() []string {
		list := &eventsv1.EventList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		var notes []string
		for _, e := range list.Items {
			if e.Regarding.Name == name && e.Reason == reason {
				notes = append(notes, e.Note)
			}
		}
		return notes
	}
}

var _ = Describe("Node loss", func() {
	var (
		ns string
		ts *tarsv1beta1.TServer
		// nodeA and nodeB are names of this spec's nodes.
		nodeA, nodeB string
	)

	BeforeEach(func() {
		ns = newNamespace()
		ts = tarslogIn(ns)
		nodeA, nodeB = ns+"-a", ns+"-b"
	})

	It("frees a replica from a deleted Node once the grace has passed, and leaves the others alone", func() {
		freedBefore := testutil.ToFloat64(replicasFreed.WithLabelValues(tarsv1beta1.ReasonNodeDeleted))
		registerNode(nodeA, corev1.ConditionTrue)
		lost := registerNode(nodeB, corev1.ConditionTrue)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		kept := placeReplica(ts, "remote-log-dir", 0, nodeA, true)
		keptPod := podOn(ts, 0, nodeA, kept)
		freed := placeReplica(ts, "remote-log-dir", 1, nodeB, true)
		freedPod := podOn(ts, 1, nodeB, freed)
		Eventually(conditionOf(ts, tarsv1beta1.ConditionNodesAvailable), timeout, interval).Should(And(Not(BeNil()),
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", tarsv1beta1.ReasonAllNodesAvailable)))

		By("waiting out the grace after the Node is deleted, and saying so")
		Expect(k8sClient.Delete(ctx, lost)).To(Succeed())
		Eventually(conditionOf(ts, tarsv1beta1.ConditionNodesAvailable), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", tarsv1beta1.ReasonNodeDeleted),
			HaveField("Message", ContainSubstring("replica tars-tarslog-1 on node "+nodeB)),
			HaveField("Message", ContainSubstring("unless the node registers again")),
			HaveField("Message", Not(ContainSubstring("tars-tarslog-0")))))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement(tarsv1beta1.ReasonNodeDeleted))
		Consistently(untouched(freed.claim), time.Second, interval).Should(BeTrue())
		Expect(untouched(freed.volume)()).To(BeTrue())
		Expect(untouched(freedPod)()).To(BeTrue())

		By("freeing the replica once it has passed: volume made Retain and deleted, claim and pod deleted")
		passGrace(ts)
		Eventually(goneOrGoing(freed.claim), timeout, interval).Should(BeTrue())
		Eventually(goneOrGoing(freed.volume), timeout, interval).Should(BeTrue())
		Eventually(goneOrGoing(freedPod), timeout, interval).Should(BeTrue())
		pv := &corev1.PersistentVolume{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(freed.volume), pv); err == nil {
			Expect(pv.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimRetain))
			Expect(pv.Annotations).To(HaveKeyWithValue(tarsv1beta1.AnnotationFreedFromNode, nodeB))
		}
		Expect(untouched(kept.claim)()).To(BeTrue())
		Expect(untouched(kept.volume)()).To(BeTrue())
		Expect(untouched(keptPod)()).To(BeTrue())

		By("saying where the data stays, on the TServer and on the claim")
		where := freed.volume.Name + " (" + freed.volume.Spec.Local.Path + ")"
		Eventually(eventNotes(ns, ts.Name, "FreedReplica"), timeout, interval).Should(ContainElement(And(
			ContainSubstring("Freed replica tars-tarslog-1: node "+nodeB+" is gone"), ContainSubstring(where))))
		Expect(eventNotes(ns, freed.claim.Name, "FreedReplica")()).To(ContainElement(ContainSubstring(where)))
		Expect(testutil.ToFloat64(replicasFreed.WithLabelValues(tarsv1beta1.ReasonNodeDeleted))).To(Equal(freedBefore + 1))
		Eventually(conditionOf(ts, tarsv1beta1.ConditionNodesAvailable),
			timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))

		By("freeing nothing more, nor saying it again, on later reconciles")
		passGrace(ts)
		Expect(eventNotes(ns, ts.Name, "FreedReplica")()).To(HaveLen(1))
		Expect(testutil.ToFloat64(replicasFreed.WithLabelValues(tarsv1beta1.ReasonNodeDeleted))).To(Equal(freedBefore + 1))
	})

	It("frees nothing on a node that is only NotReady, and says which replica waits there since when", func() {
		node := registerNode(nodeA, corev1.ConditionTrue)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		p := placeReplica(ts, "remote-log-dir", 0, nodeA, true)
		pod := podOn(ts, 0, nodeA, p)

		setReady(node, corev1.ConditionUnknown)
		since := node.Status.Conditions[0].LastTransitionTime.UTC().Format(time.RFC3339)
		Eventually(conditionOf(ts, tarsv1beta1.ConditionNodesAvailable), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", tarsv1beta1.ReasonNodeNotReady),
			HaveField("Message", ContainSubstring(
				"replica tars-tarslog-0 on node "+nodeA+": the node is not Ready since "+since)),
			HaveField("Message", ContainSubstring(
				"taint it node.kubernetes.io/out-of-service=nodeshutdown:NoExecute or delete its Node"))))
		Eventually(eventNotes(ns, ts.Name, tarsv1beta1.ReasonNodeNotReady),
			timeout, interval).Should(ContainElement(ContainSubstring(nodeA)))

		passGrace(ts)
		passGrace(ts)
		Consistently(untouched(p.claim), time.Second, interval).Should(BeTrue())
		Expect(untouched(p.volume)()).To(BeTrue())
		Expect(untouched(pod)()).To(BeTrue())

		By("turning true when the node is Ready again")
		setReady(node, corev1.ConditionTrue)
		Eventually(conditionOf(ts, tarsv1beta1.ConditionNodesAvailable),
			timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))
	})

	It("frees at once on the out-of-service taint of a node that is not Ready, never while it is Ready", func() {
		freedBefore := testutil.ToFloat64(replicasFreed.WithLabelValues(tarsv1beta1.ReasonNodeOutOfService))
		node := registerNode(nodeA, corev1.ConditionTrue, corev1.Taint{
			Key: corev1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute,
		})
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		p := placeReplica(ts, "remote-log-dir", 0, nodeA, true)
		pod := podOn(ts, 0, nodeA, p)

		By("refusing while the tainted node is Ready")
		Eventually(conditionOf(ts, tarsv1beta1.ConditionNodesAvailable), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", tarsv1beta1.ReasonNodeOutOfServiceButReady)))
		Consistently(untouched(p.claim), time.Second, interval).Should(BeTrue())

		By("freeing without a grace once it is not Ready")
		setReady(node, corev1.ConditionFalse)
		Eventually(goneOrGoing(p.claim), timeout, interval).Should(BeTrue())
		Eventually(goneOrGoing(p.volume), timeout, interval).Should(BeTrue())
		Eventually(goneOrGoing(pod), timeout, interval).Should(BeTrue())
		Eventually(eventNotes(ns, ts.Name, "FreedReplica"), timeout, interval).Should(ContainElement(
			ContainSubstring("node " + nodeA + " is tainted node.kubernetes.io/out-of-service and not Ready")))
		Expect(testutil.ToFloat64(replicasFreed.WithLabelValues(tarsv1beta1.ReasonNodeOutOfService))).
			To(Equal(freedBefore + 1))
	})

	It("keeps a replica of a server whose nodeLossPolicy is Wait, "+
		"but frees a delay-bind claim that holds no data", func() {
		registerNode(nodeA, corev1.ConditionFalse,
			corev1.Taint{Key: corev1.TaintNodeOutOfService, Effect: corev1.TaintEffectNoExecute})
		ts.Spec.K8S.NodeLossPolicy = tarsv1beta1.NodeLossWait
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		waiting := placeReplica(ts, "remote-log-dir", 0, nodeA, true)

		hostNet := tarslogIn(ns)
		hostNet.Name, hostNet.Spec.Server = "tars-hostnet", "hostnet"
		hostNet.Spec.K8S.NodeLossPolicy = tarsv1beta1.NodeLossWait
		hostNet.Spec.K8S.HostNetwork = true
		hostNet.Spec.K8S.Mounts = nil
		Expect(k8sClient.Create(ctx, hostNet)).To(Succeed())
		statefulSetOf(hostNet)
		pinning := placeReplica(hostNet, tarsv1beta1.DelayBindVolumeName, 0, nodeA, true)

		Eventually(conditionOf(ts, tarsv1beta1.ConditionNodesAvailable), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", tarsv1beta1.ReasonNodeLossPolicyWait),
			HaveField("Message", ContainSubstring("nodeLossPolicy is Wait"))))
		Eventually(goneOrGoing(pinning.claim), timeout, interval).Should(BeTrue())
		Expect(untouched(waiting.claim)()).To(BeTrue())
		Expect(untouched(waiting.volume)()).To(BeTrue())
		Eventually(conditionOf(hostNet, tarsv1beta1.ConditionNodesAvailable),
			timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))
	})

	It("frees no replica whose volume a living node may hold, "+
		"and finds the node of a claim that does not name it", func() {
		registerNode(nodeA, corev1.ConditionTrue)
		lost := registerNode(nodeB, corev1.ConditionTrue)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		stray := placeReplica(ts, "remote-log-dir", 0, nodeA, true)
		// Bound directly to a volume made beforehand: the claim does not name its node.
		found := placeReplica(ts, "remote-log-dir", 1, nodeB, false)

		By("deleting node A and registering another node that carries its hostname, as a confused administrator might")
		deleteLossNode(nodeA)
		twin := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: ns + "-twin", Labels: map[string]string{corev1.LabelHostname: nodeA},
		}}
		Expect(k8sClient.Create(ctx, twin)).To(Succeed())
		DeferCleanup(func() { Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, twin))).To(Succeed()) })
		setReady(twin, corev1.ConditionTrue)
		Eventually(func() (corev1.ConditionStatus, error) { // as the manager sees it
			got := &corev1.Node{}
			err := reconciler.Get(ctx, client.ObjectKeyFromObject(twin), got)
			for _, c := range got.Status.Conditions {
				if c.Type == corev1.NodeReady {
					return c.Status, err
				}
			}
			return "", err
		}, timeout, interval).Should(Equal(corev1.ConditionTrue))
		// Seen gone before the grace is passed: the grace counts from when the manager sees it.
		deleteLossNode(lost.Name)

		Eventually(func() error {
			_, err := reconciler.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ts)})
			return err
		}, timeout, interval).Should(Succeed())
		passGrace(ts)
		Eventually(goneOrGoing(found.claim), timeout, interval).Should(BeTrue())
		Eventually(goneOrGoing(found.volume), timeout, interval).Should(BeTrue())
		Consistently(untouched(stray.claim), time.Second, interval).Should(BeTrue())
		Expect(untouched(stray.volume)()).To(BeTrue())
		Eventually(conditionOf(ts, tarsv1beta1.ConditionNodesAvailable), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Message", ContainSubstring("may be on node "+twin.Name+", which is not gone"))))
	})
})

// unclaimedVolume makes a node-local volume on node that no claim is bound to, in phase.
func unclaimedVolume(name, node string, phase corev1.PersistentVolumePhase) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
			tarsv1beta1.LabelLocalVolume: "remote-log-dir",
			tarsv1beta1.LabelServerApp:   "tars",
			tarsv1beta1.LabelServerName:  "tarslog",
		}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{
				Path: "/data/" + name,
			}},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              tarsv1beta1.StorageClassName,
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node},
					}},
				}},
			}},
		},
	}
	if phase == corev1.VolumeReleased {
		pv.Spec.ClaimRef = &corev1.ObjectReference{Namespace: "gone", Name: "gone", UID: "0000"}
	}
	Expect(k8sClient.Create(ctx, pv)).To(Succeed())
	pv.Status.Phase = phase
	Expect(k8sClient.Status().Update(ctx, pv)).To(Succeed())
	return pv
}

var _ = Describe("Volumes no claim holds on a lost node", func() {
	It("are made Retain and deleted once the node is gone, and only then; "+
		"volumes kept under Retain are left alone", func() {
		ns := newNamespace()
		living, lost := ns+"-a", ns+"-b"
		registerNode(living, corev1.ConditionTrue)
		node := registerNode(lost, corev1.ConditionTrue)
		released := unclaimedVolume(ns+"-released", lost, corev1.VolumeReleased)
		available := unclaimedVolume(ns+"-available", lost, corev1.VolumeAvailable)
		elsewhere := unclaimedVolume(ns+"-elsewhere", living, corev1.VolumeReleased)
		retained := unclaimedVolume(ns+"-retained", lost, corev1.VolumeReleased)
		patch := client.MergeFrom(retained.DeepCopy())
		retained.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		Expect(k8sClient.Patch(ctx, retained, patch)).To(Succeed())
		before := testutil.ToFloat64(lostVolumesDeleted)

		By("touching nothing while the node is there, nor within the grace after it is deleted")
		_, err := reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(k8sClient.Delete(ctx, node)).To(Succeed())
		Eventually(func() error { return reconciler.Get(ctx, client.ObjectKeyFromObject(node), &corev1.Node{}) },
			timeout, interval).Should(Satisfy(apierrors.IsNotFound))
		next, err := reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(next).To(BeNumerically("~", nodeLossGrace, time.Second))
		for _, pv := range []*corev1.PersistentVolume{released, available, elsewhere, retained} {
			Expect(untouched(pv)()).To(BeTrue(), pv.Name)
		}

		By("deleting those on the lost node once the grace has passed")
		nodeLossClock.SetTime(nodeLossClock.Now().Add(nodeLossGrace + time.Second))
		_, err = reconciler.sweepLostVolumes(ctx)
		Expect(err).NotTo(HaveOccurred())
		for _, pv := range []*corev1.PersistentVolume{released, available} {
			// The manager's own sweeper, woken by other specs' nodes, may be the one that deletes it.
			Eventually(goneOrGoing(pv), timeout, interval).Should(BeTrue(), pv.Name)
			got := &corev1.PersistentVolume{}
			if k8sClient.Get(ctx, client.ObjectKeyFromObject(pv), got) == nil {
				Expect(got.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimRetain))
			}
		}
		Expect(untouched(elsewhere)()).To(BeTrue())
		Expect(untouched(retained)()).To(BeTrue(), "a volume kept under Retain is the administrator's")
		Eventually(func() float64 { return testutil.ToFloat64(lostVolumesDeleted) },
			timeout, interval).Should(Equal(before + 2))
		Eventually(eventNotes("default", released.Name, "DeletedLostVolume"), timeout, interval).Should(ContainElement(
			ContainSubstring("its directory /data/" + released.Name + " stays on that node's disk")))
	})
})

func TestJudgeNode(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	grace := 2 * time.Minute
	node := func(ready corev1.ConditionStatus, taints ...corev1.Taint) *corev1.Node {
		n := &corev1.Node{Spec: corev1.NodeSpec{Taints: taints}}
		if ready != "" {
			n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready,
				LastTransitionTime: metav1.NewTime(now.Add(-time.Hour))}}
		}
		return n
	}
	outOfService := corev1.Taint{
		Key: corev1.TaintNodeOutOfService, Value: "nodeshutdown", Effect: corev1.TaintEffectNoExecute,
	}
	deleting := node(corev1.ConditionFalse)
	deleting.DeletionTimestamp = new(metav1.NewTime(now.Add(-3 * time.Minute)))
	draining := node(corev1.ConditionTrue)
	draining.DeletionTimestamp = deleting.DeletionTimestamp
	for _, tc := range []struct {
		name    string
		node    *corev1.Node
		missed  time.Time
		verdict nodeVerdict
		reason  string
	}{
		{"Ready", node(corev1.ConditionTrue), now, nodeAvailable, ""},
		{"NotReady", node(corev1.ConditionFalse), now, nodeWaiting, tarsv1beta1.ReasonNodeNotReady},
		{"Unknown", node(corev1.ConditionUnknown), now, nodeWaiting, tarsv1beta1.ReasonNodeNotReady},
		{"no Ready condition yet", node(""), now, nodeWaiting, tarsv1beta1.ReasonNodeNotReady},
		{"a taint of another key", node(corev1.ConditionFalse, corev1.Taint{Key: corev1.TaintNodeUnreachable}), now,
			nodeWaiting, tarsv1beta1.ReasonNodeNotReady},
		{"out-of-service but Ready", node(corev1.ConditionTrue, outOfService), now,
			nodeWaiting, tarsv1beta1.ReasonNodeOutOfServiceButReady},
		{"out-of-service and NotReady", node(corev1.ConditionFalse, outOfService), now,
			nodeGone, tarsv1beta1.ReasonNodeOutOfService},
		{"out-of-service and Unknown", node(corev1.ConditionUnknown, outOfService), now,
			nodeGone, tarsv1beta1.ReasonNodeOutOfService},
		{"deleted just now", nil, now, nodeWaiting, tarsv1beta1.ReasonNodeDeleted},
		{"deleted within the grace", nil, now.Add(-grace + time.Second), nodeWaiting, tarsv1beta1.ReasonNodeDeleted},
		{"deleted for the grace", nil, now.Add(-grace), nodeGone, tarsv1beta1.ReasonNodeDeleted},
		{"being deleted past the grace, not Ready", deleting, now, nodeGone, tarsv1beta1.ReasonNodeDeleted},
		{"being deleted past the grace but Ready (a finalizer holds it while it drains)", draining, now,
			nodeWaiting, tarsv1beta1.ReasonNodeDeleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := judgeNode(tc.node, tc.missed, grace, now)
			if got.verdict != tc.verdict || got.reason != tc.reason {
				t.Errorf("judgeNode = %v %q, want %v %q", got.verdict, got.reason, tc.verdict, tc.reason)
			}
			if got.verdict == nodeWaiting && tc.node == nil && !got.freeAt.Equal(tc.missed.Add(grace)) {
				t.Errorf("freeAt = %v, want %v", got.freeAt, tc.missed.Add(grace))
			}
		})
	}
}

func TestNodesAvailableNamesTheMostPressingReason(t *testing.T) {
	ts := &tarsv1beta1.TServer{ObjectMeta: metav1.ObjectMeta{Name: "tars-tarslog", Generation: 3}}
	since := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	waits := []nodeWait{
		{ordinal: 0, node: "n1", state: nodeState{verdict: nodeWaiting, reason: tarsv1beta1.ReasonNodeNotReady,
			since: since}},
		{ordinal: 1, node: "n2", state: nodeState{verdict: nodeGone, reason: tarsv1beta1.ReasonNodeDeleted,
			since: since}, policyWait: true},
		{ordinal: 2, node: "n3", state: nodeState{verdict: nodeWaiting, reason: tarsv1beta1.ReasonNodeDeleted, since: since,
			freeAt: since.Add(time.Minute)}},
	}
	c := nodesAvailable(ts, waits)
	if c.Status != metav1.ConditionFalse || c.Reason != tarsv1beta1.ReasonNodeLossPolicyWait || c.ObservedGeneration != 3 {
		t.Errorf("condition = %s %s (generation %d), want False %s", c.Status, c.Reason, c.ObservedGeneration,
			tarsv1beta1.ReasonNodeLossPolicyWait)
	}
	for _, want := range []string{
		"3 replica(s)",
		"replica tars-tarslog-0 on node n1: the node is not Ready since 2026-12-03T12:00:00Z",
		"replica tars-tarslog-1 on node n2: the node is gone (NodeDeleted since 2026-12-03T12:00:00Z) " +
			"and nodeLossPolicy is Wait",
		"replica tars-tarslog-2 on node n3: the Node object is deleted since 2026-12-03T12:00:00Z; " +
			"the replica is freed at 2026-12-03T12:01:00Z",
	} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("message %q lacks %q", c.Message, want)
		}
	}
	if c := nodesAvailable(ts, nil); c.Status != metav1.ConditionTrue || c.Reason != tarsv1beta1.ReasonAllNodesAvailable {
		t.Errorf("without waits: %s %s, want True %s", c.Status, c.Reason, tarsv1beta1.ReasonAllNodesAvailable)
	}
}
