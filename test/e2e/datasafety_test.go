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
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

// sentinel writes a file into a bound volume's directory, as the service would, and returns a
// check that the file still holds what was written.
func sentinel(dir string) func() ([]byte, error) {
	file := filepath.Join(dir, "sentinel")
	Expect(os.WriteFile(file, []byte("precious"), 0o644)).To(Succeed())
	return func() ([]byte, error) { return os.ReadFile(file) }
}

// pinned is tarslog with one replica, required on node.
func pinned(ns, node string) *tarsv1beta1.TServer {
	ts := tarslog(ns)
	ts.Spec.K8S.Replicas = 1
	ts.Spec.K8S.NodeSelector = []corev1.NodeSelectorRequirement{
		{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{node}},
	}
	return ts
}

// eventsAbout lists the reasons of the events about an object of kind and name.
func eventsAbout(kind, name string) func() []string {
	return func() []string {
		list := &eventsv1.EventList{}
		Expect(k8sClient.List(ctx, list)).To(Succeed())
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}
}

// condition reads a condition of a TServer afresh.
func condition(ts *tarsv1beta1.TServer, conditionType string) func() *metav1.Condition {
	return func() *metav1.Condition {
		got := &tarsv1beta1.TServer{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), got)).To(Succeed())
		return meta.FindStatusCondition(got.Status.Conditions, conditionType)
	}
}

// scaleToZeroAndDeleteClaim stops the server's only replica and deletes its claim, as a user
// giving up the replica's volume would.
func scaleToZeroAndDeleteClaim(ts *tarsv1beta1.TServer) {
	edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 0 })
	Eventually(func() *corev1.Pod { return getPod(ts.Namespace, ts.Name+"-0") }, timeout, interval).Should(BeNil())
	pvc := getClaim(ts.Namespace, claimName("remote-log-dir", ts, 0))
	Expect(pvc).NotTo(BeNil())
	Expect(k8sClient.Delete(ctx, pvc)).To(Succeed())
	Eventually(func() *corev1.PersistentVolumeClaim { return getClaim(ts.Namespace, pvc.Name) },
		timeout, interval).Should(BeNil())
}

var _ = Describe("Data safety on a local cluster", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		By("working in namespace " + ns)
	})

	It("removes nothing on a volume wrongly marked Released, "+
		"nor for a volume made by hand over a parent directory", func() {
		node := eligibleNodes[0]
		ts := pinned(ns, node)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		waitRunning(ts, 1, "remote-log-dir")
		data := sentinel(hostDir(node, ts, "remote-log-dir"))
		pv := volumeOf(ns, claimName("remote-log-dir", ts, 0))

		By("setting the bound volume's status to Released by mistake")
		pv.Status.Phase = corev1.VolumeReleased
		Expect(k8sClient.Status().Update(ctx, pv)).To(Succeed())

		By("making a volume by hand, named and labelled as the agent would, for the server's whole directory, released")
		byHand := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{
				Name: tarsv1beta1.LocalVolumeName(ns, "cache", ts.Spec.App, ts.Spec.Server, node, tarsv1beta1.StorageClassName),
				Labels: map[string]string{
					tarsv1beta1.LabelServerApp: ts.Spec.App, tarsv1beta1.LabelServerName: ts.Spec.Server,
					tarsv1beta1.LabelLocalVolume: "cache", corev1.LabelHostname: node,
				},
				Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": "tserver-agent-" + node},
			},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{
					Path: localcluster.ProductionHostRoot + "/" + ns + "/" + ts.Spec.App + "." + ts.Spec.Server,
				}},
				NodeAffinity: pv.Spec.NodeAffinity,
				ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
					Namespace: ns, Name: "long-gone", UID: "00000000-0000-0000-0000-000000000000"},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				StorageClassName:              tarsv1beta1.StorageClassName,
			},
		}
		Expect(k8sClient.Create(ctx, byHand)).To(Succeed())
		Eventually(eventsAbout("PersistentVolume", byHand.Name), timeout, interval).Should(ContainElement("CleanupRefused"))

		Consistently(data, 2*gcGrace, interval).Should(Equal([]byte("precious")))
		Expect(getClaim(ns, claimName("remote-log-dir", ts, 0)).Status.Phase).To(Equal(corev1.ClaimBound))
		got := &corev1.PersistentVolume{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pv), got)).To(Succeed())
		Expect(got.DeletionTimestamp).To(BeNil())
		Expect(got.Status.Phase).To(Equal(corev1.VolumeBound), "the PV controller sets the phase right again")
		Expect(k8sClient.Delete(ctx, byHand)).To(Succeed())
	})

	It("never gives a replica an empty directory in place of a missing data disk, and says which replica waits", func() {
		node := eligibleNodes[1]
		ts := pinned(ns, node)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		waitRunning(ts, 1, "remote-log-dir")
		dir := hostDir(node, ts, "remote-log-dir")
		data := sentinel(dir)

		By("the data disk not mounted after a reboot: the directory is not there, and the pod restarts")
		Expect(os.Rename(dir, dir+".unmounted")).To(Succeed())
		restartPod(ns, ts.Name+"-0")
		Eventually(condition(ts, "VolumesHealthy"), timeout, interval).Should(And(
			Not(BeNil()), HaveField("Status", metav1.ConditionFalse),
			HaveField("Message", And(ContainSubstring(ts.Name+"-0"), ContainSubstring(node)))))
		claim := claimName("remote-log-dir", ts, 0)
		Expect(getClaim(ns, claim).Annotations).To(HaveKey(tarsv1beta1.AnnotationVolumeProblem))
		Eventually(eventsAbout("PersistentVolumeClaim", claim),
			timeout, interval).Should(ContainElement("VolumeDirectoryMissing"))
		Consistently(func() string { return dir }, 3*time.Second, interval).ShouldNot(BeADirectory())

		By("the disk mounted again")
		Expect(os.Rename(dir+".unmounted", dir)).To(Succeed())
		Eventually(condition(ts, "VolumesHealthy"), timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))
		Expect(getClaim(ns, claim).Annotations).NotTo(HaveKey(tarsv1beta1.AnnotationVolumeProblem))
		Expect(data()).To(Equal([]byte("precious")))
	})

	It("never hands retained data to a volume that a claim's deletion erases", func() {
		node := eligibleNodes[2]
		ts := pinned(ns, node)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		waitRunning(ts, 1, "remote-log-dir")
		data := sentinel(hostDir(node, ts, "remote-log-dir"))
		pv := volumeOf(ns, claimName("remote-log-dir", ts, 0))

		By("an administrator retaining the volume, then deleting the claim and the released volume")
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		Expect(k8sClient.Update(ctx, pv)).To(Succeed())
		scaleToZeroAndDeleteClaim(ts)
		Eventually(func() corev1.PersistentVolumePhase {
			got := &corev1.PersistentVolume{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pv), got)).To(Succeed())
			return got.Status.Phase
		}, timeout, interval).Should(Equal(corev1.VolumeReleased))
		Consistently(data, gcGrace, interval).Should(Equal([]byte("precious")))
		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(pv), &corev1.PersistentVolume{}))
		}, timeout, interval).Should(BeTrue())

		By("a new claim of the server landing on that directory: its volume keeps the data under Retain")
		edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 1 })
		waitRunning(ts, 1, "remote-log-dir")
		adopted := volumeOf(ns, claimName("remote-log-dir", ts, 0))
		Expect(adopted.UID).NotTo(Equal(pv.UID))
		Expect(adopted.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimRetain))
		Expect(data()).To(Equal([]byte("precious")))
		Eventually(eventsAbout("PersistentVolumeClaim", claimName("remote-log-dir", ts, 0)), timeout, interval).
			Should(ContainElement("AdoptedExistingData"))

		By("deleting that claim too: the data stays")
		scaleToZeroAndDeleteClaim(ts)
		Consistently(data, 2*gcGrace, interval).Should(Equal([]byte("precious")))
	})

	It("keeps the directories of claims Kubernetes bound to volumes made beforehand", func() {
		ts := tarslog(ns)
		for _, node := range eligibleNodes {
			madeBeforehand(node, ts, "remote-log-dir")
		}
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		for i, node := range nodes {
			pvc := getClaim(ns, claimName("remote-log-dir", ts, i))
			Expect(pvc.Annotations).NotTo(HaveKey("volume.kubernetes.io/selected-node"), "bound without provisioning")
			Eventually(func() []any { return ownershipOf(hostDir(node, ts, "remote-log-dir")) }, timeout, interval).
				Should(Equal([]any{uint32(1000), uint32(0), os.FileMode(0o755)}))
		}
		edit(ts, func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Mounts[0].Source.TLocalVolume = &tarsv1beta1.TLocalVolume{UID: "2000", GID: "100", Mode: "711"}
		})
		for _, node := range nodes {
			Eventually(func() []any { return ownershipOf(hostDir(node, ts, "remote-log-dir")) }, timeout, interval).
				Should(Equal([]any{uint32(2000), uint32(100), os.FileMode(0o711)}))
		}
	})
})
