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

package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "agent-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// newClaim creates the claim the StatefulSet controller makes from a tLocalVolume claim template.
func newClaim(ns, volume string, ordinal int, annotations map[string]string) *corev1.PersistentVolumeClaim {
	labels := map[string]string{
		tarsv1beta1.LabelServerApp: "tars", tarsv1beta1.LabelServerName: "tarslog", tarsv1beta1.LabelLocalVolume: volume,
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-tars-tarslog-%d", volume, ordinal), Namespace: ns, Labels: labels, Annotations: annotations,
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")}},
			Selector:         &metav1.LabelSelector{MatchLabels: labels},
			StorageClassName: new(testStorage),
			VolumeMode:       new(corev1.PersistentVolumeFilesystem),
		},
	}
	Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
	return pvc
}

var seedOwnership = map[string]string{
	tarsv1beta1.AnnotationLocalVolumeUID: "1000", tarsv1beta1.AnnotationLocalVolumeGID: "0", tarsv1beta1.AnnotationLocalVolumeMode: "755",
}

func volumeOn(node, ns, volume string) string {
	return tarsv1beta1.LocalVolumeName(ns, volume, "tars", "tarslog", node, testStorage)
}

func getPV(name string) func() (*corev1.PersistentVolume, error) {
	return func() (*corev1.PersistentVolume, error) {
		pv := &corev1.PersistentVolume{}
		return pv, k8sClient.Get(ctx, client.ObjectKey{Name: name}, pv)
	}
}

func pvExists(name string) func() bool {
	return func() bool {
		_, err := getPV(name)()
		return err == nil
	}
}

// pvGone says whether volume name is gone, doing what Kubernetes' PV protection controller does
// for a volume being deleted that no pod uses: remove its kubernetes.io/pv-protection finalizer.
func pvGone(name string) func() bool {
	return func() bool {
		pv, err := getPV(name)()
		if err != nil {
			return true
		}
		finishDeletion(pv)
		return false
	}
}

func finishDeletion(pv *corev1.PersistentVolume) {
	if pv.DeletionTimestamp != nil && len(pv.Finalizers) > 0 {
		pv.Finalizers = nil
		_ = k8sClient.Update(ctx, pv)
	}
}

// pvEventReasons lists the reasons of the events about volume name.
func pvEventReasons(name string) func() []string {
	return func() []string {
		list := &eventsv1.EventList{}
		Expect(k8sClient.List(ctx, list)).To(Succeed())
		var reasons []string
		for _, e := range list.Items {
			if e.Regarding.Kind == "PersistentVolume" && e.Regarding.Name == name {
				reasons = append(reasons, e.Reason)
			}
		}
		return reasons
	}
}

// dirOn is a volume directory as the agent of node sees it.
func dirOn(node, ns, volume string) string {
	return filepath.Join(agents[node].dir, ns, "tars.tarslog", volume)
}

func statDir(path string) (uid, gid uint32, mode os.FileMode, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, 0, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode().Perm(), nil
}

// bind does what the PV controller does when it binds pvc to volume pvName.
func bind(pvc *corev1.PersistentVolumeClaim, pvName string) {
	Eventually(phaseOf(pvName), timeout, interval).Should(Equal(corev1.VolumeAvailable)) // as the agent leaves it
	pv, err := getPV(pvName)()
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
	pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
		Namespace: pvc.Namespace, Name: pvc.Name, UID: pvc.UID}
	Expect(k8sClient.Update(ctx, pv)).To(Succeed())
	pv.Status.Phase = corev1.VolumeBound
	Expect(k8sClient.Status().Update(ctx, pv)).To(Succeed())
	pvc.Spec.VolumeName = pvName
	Expect(k8sClient.Update(ctx, pvc)).To(Succeed())
	pvc.Status.Phase = corev1.ClaimBound
	Expect(k8sClient.Status().Update(ctx, pvc)).To(Succeed())
}

func phaseOf(pvName string) func() corev1.PersistentVolumePhase {
	return func() corev1.PersistentVolumePhase {
		pv, _ := getPV(pvName)()
		return pv.Status.Phase
	}
}

func setPhase(pvName string, phase corev1.PersistentVolumePhase) {
	Eventually(func() error {
		pv, err := getPV(pvName)()
		if err != nil {
			return err
		}
		pv.Status.Phase = phase
		return k8sClient.Status().Update(ctx, pv)
	}, timeout, interval).Should(Succeed())
}

func eventReasons(ns string) func() []string {
	return func() []string {
		list := &eventsv1.EventList{}
		Expect(k8sClient.List(ctx, list, client.InNamespace(ns))).To(Succeed())
		reasons := make([]string, 0, len(list.Items))
		for _, e := range list.Items {
			reasons = append(reasons, e.Reason)
		}
		return reasons
	}
}

var _ = Describe("The node agent", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("provisions a volume of the exact shape on each eligible node, with the claim's ownership", func() {
		newClaim(ns, "remote-log-dir", 0, seedOwnership)

		for _, node := range []string{"node-a", "node-b"} {
			name := volumeOn(node, ns, "remote-log-dir")
			Eventually(pvExists(name), timeout, interval).Should(BeTrue(), "volume on %s", node)
			// Available at once, without a PV controller (envtest has none): the scheduler
			// considers only Available volumes.
			Eventually(phaseOf(name), timeout, interval).Should(Equal(corev1.VolumeAvailable), "phase of the volume on %s", node)
			pv, _ := getPV(name)()
			hostname := agents[node].hostname
			want := corev1.PersistentVolumeSpec{
				Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{
					Path: hostRoot + "/" + ns + "/tars.tarslog/remote-log-dir",
				}},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "kubernetes.io/hostname", Operator: "In", Values: []string{hostname}}},
				}}}},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
				StorageClassName:              "t-storage-class",
				VolumeMode:                    new(corev1.PersistentVolumeFilesystem),
			}
			Expect(cmp.Diff(want, pv.Spec)).To(BeEmpty())
			Expect(pv.Labels).To(Equal(map[string]string{
				"tars.io/LocalVolume": "remote-log-dir", "tars.io/ServerApp": "tars", "tars.io/ServerName": "tarslog",
				"kubernetes.io/hostname": hostname,
			}))
			uid, gid, mode, err := statDir(dirOn(node, ns, "remote-log-dir"))
			Expect(err).NotTo(HaveOccurred())
			Expect([]any{uid, gid, mode}).To(Equal([]any{uint32(1000), uint32(0), os.FileMode(0o755)}))
		}
		By("never on a node without tars.io/SupportLocalVolume")
		Consistently(pvExists(volumeOn("node-c", ns, "remote-log-dir")), 2*time.Second, interval).Should(BeFalse())
		Expect(dirOn("node-c", ns, "remote-log-dir")).NotTo(BeADirectory())
		Expect(eventReasons(ns)()).To(BeEmpty(), "a volume provisioned without trouble makes no event")
	})

	It("provisions delay-bind volumes on every node, and defaults missing annotations to 0:0 755", func() {
		newClaim(ns, tarsv1beta1.DelayBindVolumeName, 0, nil)
		for _, node := range []string{"node-a", "node-b", "node-c"} {
			Eventually(pvExists(volumeOn(node, ns, "delay-bind")), timeout, interval).Should(BeTrue(), "volume on %s", node)
			uid, gid, mode, err := statDir(dirOn(node, ns, "delay-bind"))
			Expect(err).NotTo(HaveOccurred())
			Expect([]any{uid, gid, mode}).To(Equal([]any{uint32(0), uint32(0), os.FileMode(0o755)}))
		}
	})

	It("repairs a bound volume's directory changed behind its back, and applies new annotations", func() {
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		name := volumeOn("node-a", ns, "remote-log-dir")
		Eventually(pvExists(name), timeout, interval).Should(BeTrue())
		bind(pvc, name)
		dir := dirOn("node-a", ns, "remote-log-dir")

		Expect(os.Chmod(dir, 0o700)).To(Succeed())
		Expect(os.Chown(dir, 0, 0)).To(Succeed())
		Eventually(func() []any {
			uid, gid, mode, _ := statDir(dir)
			return []any{uid, gid, mode}
		}, timeout, interval).Should(Equal([]any{uint32(1000), uint32(0), os.FileMode(0o755)}))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("OwnershipRepaired"))

		By("following the controller's new annotations")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		pvc.Annotations[tarsv1beta1.AnnotationLocalVolumeMode] = "711"
		pvc.Annotations[tarsv1beta1.AnnotationLocalVolumeUID] = "2000"
		Expect(k8sClient.Update(ctx, pvc)).To(Succeed())
		Eventually(func() []any {
			uid, gid, mode, _ := statDir(dir)
			return []any{uid, gid, mode}
		}, timeout, interval).Should(Equal([]any{uint32(2000), uint32(0), os.FileMode(0o711)}))
	})

	It("removes a released volume with reclaim policy Delete and its directory; touches nothing with Retain", func() {
		deleted := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		retained := newClaim(ns, "cache", 0, seedOwnership)
		deleteName, retainName := volumeOn("node-a", ns, "remote-log-dir"), volumeOn("node-a", ns, "cache")
		Eventually(pvExists(deleteName), timeout, interval).Should(BeTrue())
		Eventually(pvExists(retainName), timeout, interval).Should(BeTrue())
		bind(deleted, deleteName)
		bind(retained, retainName)
		for _, volume := range []string{"remote-log-dir", "cache"} {
			Expect(os.WriteFile(filepath.Join(dirOn("node-a", ns, volume), "data.log"), []byte("x"), 0o644)).To(Succeed())
		}
		pv, _ := getPV(retainName)()
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
		Expect(k8sClient.Update(ctx, pv)).To(Succeed())

		By("leaving both alone while they are bound")
		Consistently(func() bool { return pvExists(deleteName)() && pvExists(retainName)() }, time.Second, interval).Should(BeTrue())

		setPhase(deleteName, corev1.VolumeReleased)
		setPhase(retainName, corev1.VolumeReleased)
		Eventually(pvGone(deleteName), timeout, interval).Should(BeTrue())
		Expect(dirOn("node-a", ns, "remote-log-dir")).NotTo(BeADirectory())
		Eventually(pvEventReasons(deleteName), timeout, interval).Should(ContainElement("CleanedUp"))

		Consistently(pvExists(retainName), 2*time.Second, interval).Should(BeTrue())
		Expect(filepath.Join(dirOn("node-a", ns, "cache"), "data.log")).To(BeARegularFile())
	})

	It("deletes unneeded unbound volumes after the grace period, never one that got bound", func() {
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		onA, onB := volumeOn("node-a", ns, "remote-log-dir"), volumeOn("node-b", ns, "remote-log-dir")
		Eventually(func() bool { return pvExists(onA)() && pvExists(onB)() }, timeout, interval).Should(BeTrue())
		bind(pvc, onA)
		setPhase(onB, corev1.VolumeAvailable)

		Eventually(pvGone(onB), timeout, interval).Should(BeTrue())
		Expect(dirOn("node-b", ns, "remote-log-dir")).NotTo(BeADirectory())
		Eventually(pvEventReasons(onB), timeout, interval).Should(ContainElement("GarbageCollected"))
		Consistently(pvExists(onA), gcGrace+time.Second, interval).Should(BeTrue())
		Expect(dirOn("node-a", ns, "remote-log-dir")).To(BeADirectory())
	})

	It("keeps an unbound volume while a claim of its group is pending", func() {
		newClaim(ns, "remote-log-dir", 0, seedOwnership)
		name := volumeOn("node-b", ns, "remote-log-dir")
		Eventually(pvExists(name), timeout, interval).Should(BeTrue())
		setPhase(name, corev1.VolumeAvailable)
		Consistently(pvExists(name), gcGrace+2*time.Second, interval).Should(BeTrue())
	})

	It("reports a volume name taken by another group and leaves that volume alone", func() {
		name := volumeOn("node-a", ns, "remote-log-dir")
		squatter := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"owner": "someone-else"}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
				AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv"}},
				StorageClassName:       "other",
			},
		}
		Expect(k8sClient.Create(ctx, squatter)).To(Succeed())
		newClaim(ns, "remote-log-dir", 0, seedOwnership)

		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("VolumeNameCollision"))
		got, err := getPV(name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(got.ResourceVersion).To(Equal(squatter.ResourceVersion))
		By("while the other node still provisions")
		Eventually(pvExists(volumeOn("node-b", ns, "remote-log-dir")), timeout, interval).Should(BeTrue())
	})

	It("converges after a restart: an agent that died after making a directory adopts it", func() {
		a := agents["node-b"]
		a.stop()
		<-a.done
		dir := filepath.Join(a.dir, ns, "tars.tarslog", "remote-log-dir")
		Expect(os.MkdirAll(dir, 0o700)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "kept"), []byte("data"), 0o600)).To(Succeed())
		newClaim(ns, "remote-log-dir", 0, seedOwnership)
		Consistently(pvExists(volumeOn("node-b", ns, "remote-log-dir")), time.Second, interval).Should(BeFalse())

		startAgent(a.node, a.hostname, a.dir)
		Eventually(pvExists(volumeOn("node-b", ns, "remote-log-dir")), timeout, interval).Should(BeTrue())
		Expect(os.ReadFile(filepath.Join(dir, "kept"))).To(Equal([]byte("data")))
		uid, _, mode, err := statDir(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect([]any{uid, mode}).To(Equal([]any{uint32(1000), os.FileMode(0o755)}))
	})

	It("re-provisions for a new claim once a released volume is cleaned up", func() {
		old := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		name := volumeOn("node-a", ns, "remote-log-dir")
		Eventually(pvExists(name), timeout, interval).Should(BeTrue())
		bind(old, name)
		first, _ := getPV(name)()

		Expect(k8sClient.Delete(ctx, old)).To(Succeed())
		setPhase(name, corev1.VolumeReleased)
		newClaim(ns, "remote-log-dir", 1, seedOwnership)
		Eventually(func() bool {
			pv, err := getPV(name)()
			if err == nil && pv.UID == first.UID {
				finishDeletion(pv)
			}
			return err == nil && pv.UID != first.UID
		}, timeout, interval).Should(BeTrue())
	})
})
