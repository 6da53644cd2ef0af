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
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

const (
	timeout  = 10 * time.Second
	interval = 100 * time.Millisecond
	// progressInterval is the suite's TServerReconciler.ProgressInterval: long enough that a new
	// TServer's first status (progress only) is held back past its first reconcile.
	progressInterval = 4 * time.Second
)

// newNamespace creates a namespace for one test.
func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "ts-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// tarslogIn is the seed's tarslog sample in namespace ns.
func tarslogIn(ns string) *tarsv1beta1.TServer {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", "tars-tarslog.yaml"))
	Expect(err).NotTo(HaveOccurred())
	ts := &tarsv1beta1.TServer{}
	Expect(yaml.UnmarshalStrict(data, ts)).To(Succeed())
	ts.Namespace = ns
	return ts
}

func statefulSetOf(ts *tarsv1beta1.TServer) *appsv1.StatefulSet {
	sts := &appsv1.StatefulSet{}
	Eventually(func() error {
		return k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), sts)
	}, timeout, interval).Should(Succeed())
	return sts
}

// edit changes the stored TServer with change, retrying on conflicts.
func edit(ts *tarsv1beta1.TServer, change func(*tarsv1beta1.TServer)) {
	Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), ts); err != nil {
			return err
		}
		change(ts)
		return k8sClient.Update(ctx, ts)
	}, timeout, interval).Should(Succeed())
}

// update reads obj, changes it and writes it back, again on conflicts: the controller may be
// writing it too.
func update(obj client.Object, change func()) {
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change()
		return k8sClient.Update(ctx, obj)
	})).To(Succeed())
}

// claimOf creates the claim the StatefulSet controller would make for volume and ordinal
// (envtest runs no StatefulSet controller).
func claimOf(ts *tarsv1beta1.TServer, volume string, ordinal int,
	annotations map[string]string) *corev1.PersistentVolumeClaim {
	sts := expand.StatefulSet(ts)
	i := slices.IndexFunc(sts.Spec.VolumeClaimTemplates, func(t corev1.PersistentVolumeClaim) bool {
		return t.Name == volume
	})
	Expect(i).To(BeNumerically(">=", 0), "no claim template %s", volume)
	tpl := sts.Spec.VolumeClaimTemplates[i]
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%s-%d", volume, ts.Name, ordinal), Namespace: ts.Namespace,
			Labels: tpl.Labels, Annotations: annotations,
		},
		Spec: tpl.Spec,
	}
	Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
	return pvc
}

// recreatedWithData creates ts, adds a tLocalVolume mount "data" and plays the garbage
// collector's part in the StatefulSet's re-creation; it returns the new StatefulSet.
func recreatedWithData(ts *tarsv1beta1.TServer) *appsv1.StatefulSet {
	Expect(k8sClient.Create(ctx, ts)).To(Succeed())
	old := statefulSetOf(ts)
	edit(ts, func(ts *tarsv1beta1.TServer) {
		ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
			Name: "data", MountPath: "/data", Source: tarsv1beta1.TK8SMountSource{TLocalVolume: &tarsv1beta1.TLocalVolume{}},
		})
	})
	Eventually(func() *metav1.Time { return statefulSetOf(ts).DeletionTimestamp }, timeout, interval).ShouldNot(BeNil())
	update(old, func() { old.Finalizers = nil }) // what the garbage collector does after orphaning
	sts := &appsv1.StatefulSet{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), sts)).To(Succeed())
		g.Expect(sts.UID).NotTo(Equal(old.UID))
	}, timeout, interval).Should(Succeed())
	return sts
}

// podOf creates the pod of sts with that ordinal (envtest runs no StatefulSet controller),
// mounting the claims of volumes, controlled by sts when owned, Running, and Ready or not. An
// owned pod is adopted once its status is written: the controller replaces at once a pod it
// controls that lacks claims and is not ready, as a pod is between its create and its status.
func podOf(sts *appsv1.StatefulSet, ordinal int, ready, owned bool, volumes ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: sts.Namespace, Name: fmt.Sprintf("%s-%d", sts.Name, ordinal),
			Labels: sts.Spec.Selector.MatchLabels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c"}}},
	}
	for _, v := range volumes {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
				ClaimName: fmt.Sprintf("%s-%s-%d", v, sts.Name, ordinal),
			},
		}})
	}
	Expect(k8sClient.Create(ctx, p)).To(Succeed())
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}},
	}
	Expect(k8sClient.Status().Update(ctx, p)).To(Succeed())
	if owned {
		p.OwnerReferences = []metav1.OwnerReference{
			*metav1.NewControllerRef(sts, appsv1.SchemeGroupVersion.WithKind("StatefulSet")),
		}
		Expect(k8sClient.Update(ctx, p)).To(Succeed())
	}
	return p
}

// podExists says whether the pod is still there.
func podExists(p *corev1.Pod) func() bool {
	return func() bool { return k8sClient.Get(ctx, client.ObjectKeyFromObject(p), &corev1.Pod{}) == nil }
}

// useStorageClass makes t-storage-class anew with provisioner (a class's provisioner is
// immutable).
func useStorageClass(provisioner string) {
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: tarsv1beta1.StorageClassName}}
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, sc))).To(Succeed())
	Eventually(func() error {
		return k8sClient.Create(ctx, &storagev1.StorageClass{
			ObjectMeta:        metav1.ObjectMeta{Name: tarsv1beta1.StorageClassName},
			Provisioner:       provisioner,
			VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
		})
	}, timeout, interval).Should(Succeed())
}

func conditionOf(ts *tarsv1beta1.TServer, conditionType string) func() *metav1.Condition {
	return func() *metav1.Condition {
		got := &tarsv1beta1.TServer{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), got); err != nil {
			return nil
		}
		return meta.FindStatusCondition(got.Status.Conditions, conditionType)
	}
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

var _ = Describe("TServer controller", func() {
	var (
		ns string
		ts *tarsv1beta1.TServer
	)

	BeforeEach(func() {
		ns = newNamespace()
		ts = tarslogIn(ns)
	})

	It("creates the StatefulSet and headless Service with the seed's claim templates", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())

		sts := statefulSetOf(ts)
		Expect(metav1.IsControlledBy(sts, ts)).To(BeTrue())
		Expect(sts.Spec.Replicas).To(Equal(ptr.To[int32](2)))
		Expect(sts.Spec.ServiceName).To(Equal("tars-tarslog"))
		Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))
		tpl := sts.Spec.VolumeClaimTemplates[0]
		Expect(tpl.Name).To(Equal("remote-log-dir"))
		Expect(tpl.Labels).To(Equal(map[string]string{
			"tars.io/LocalVolume": "remote-log-dir", "tars.io/ServerApp": "tars", "tars.io/ServerName": "tarslog",
		}))
		Expect(tpl.Annotations).To(Equal(map[string]string{
			"tars.io/LocalVolumeUID": "1000", "tars.io/LocalVolumeGID": "0", "tars.io/LocalVolumeMode": "755",
		}))
		Expect(*tpl.Spec.StorageClassName).To(Equal("t-storage-class"))
		Expect(tpl.Spec.Selector.MatchLabels).To(Equal(tpl.Labels))

		svc := &corev1.Service{}
		// Made right after the StatefulSet, in the same reconcile.
		Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), svc) },
			timeout, interval).Should(Succeed())
		Expect(metav1.IsControlledBy(svc, ts)).To(BeTrue())
		Expect(svc.Spec.ClusterIP).To(Equal(corev1.ClusterIPNone))

		By("owning both, so that deleting the TServer garbage-collects them (and leaves claims)")
		for _, obj := range []client.Object{sts, svc} {
			ref := metav1.GetControllerOf(obj)
			Expect(ref.Kind).To(Equal("TServer"))
			Expect(ref.UID).To(Equal(ts.UID))
			Expect(*ref.BlockOwnerDeletion).To(BeTrue())
		}
		Expect(sts.Spec.PersistentVolumeClaimRetentionPolicy.WhenDeleted).
			To(Equal(appsv1.RetainPersistentVolumeClaimRetentionPolicyType))

		By("reporting status, with the pending claims named")
		Eventually(conditionOf(ts, tarsv1beta1.ConditionVolumesBound), timeout, interval).Should(And(
			Not(BeNil()),
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Message", ContainSubstring("remote-log-dir-tars-tarslog-0, remote-log-dir-tars-tarslog-1")),
		))
		got := &tarsv1beta1.TServer{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), got)).To(Succeed())
		Expect(got.Status.Selector).To(Equal("tars.io/ServerApp=tars,tars.io/ServerName=tarslog"))
		Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("Created"))
		// When that first status, which only reports progress, is written (held until
		// ProgressInterval after creation) is TestUpdateStatusHoldsProgress's, on a fake clock.
	})

	It("writes nothing when nothing changed", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		Eventually(conditionOf(ts, tarsv1beta1.ConditionReady), timeout, interval).ShouldNot(BeNil())

		By("letting it settle: no write for longer than a batch of events takes")
		var settled []string
		Eventually(func() []string {
			before := writes.in(ns)
			time.Sleep(statusBatchPeriod + time.Second)
			settled = writes.in(ns)
			return settled[len(before):]
		}, 4*timeout, interval).Should(BeEmpty())
		Expect(settled).To(ContainElements(
			"create v1.StatefulSet tars-tarslog", "create v1.Service tars-tarslog", "patch/status v1beta1.TServer tars-tarslog",
		), "the write log misses the controller's own writes")

		By("reconciling it again, directly and through a watch event")
		for range 3 {
			_, err := reconciler.Reconcile(ctx, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(ts)})
			Expect(err).NotTo(HaveOccurred())
		}
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ts.Name}}
		update(svc, func() { svc.Labels["example.com/touched"] = "true" }) // its owner is reconciled
		Consistently(func() []string { return writes.in(ns)[len(settled):] }, 2*statusBatchPeriod, interval).
			Should(BeEmpty(), "writes of an unchanged TServer")

		By("reading its pods from the cache alone: none lacks a claim (a rollout of a thousand servers " +
			"would otherwise list their pods at every reconcile while their claims are pending)")
		Expect(managerAPIUse.listsIn(ns, "pods")).To(BeZero())
	})

	It("updates the StatefulSet in place for an ordinary change", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		uid := statefulSetOf(ts).UID

		edit(ts, func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Env = append(ts.Spec.K8S.Env, corev1.EnvVar{Name: "LOG_LEVEL", Value: "debug"})
			ts.Spec.K8S.Replicas = 3
			ts.Spec.Tars.Servants = append(ts.Spec.Tars.Servants,
				tarsv1beta1.TServerServant{Name: "StatObj", Port: 18994, IsTcp: true})
		})
		Eventually(func() []corev1.EnvVar {
			return statefulSetOf(ts).Spec.Template.Spec.Containers[0].Env
		}, timeout, interval).Should(ContainElement(corev1.EnvVar{Name: "LOG_LEVEL", Value: "debug"}))
		sts := statefulSetOf(ts)
		Expect(sts.UID).To(Equal(uid))
		Expect(*sts.Spec.Replicas).To(Equal(int32(3)))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("UpdatedStatefulSet"))
		By("updating the Service's ports with the new servant")
		Eventually(func() []string {
			svc := &corev1.Service{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), svc); err != nil {
				return nil
			}
			names := make([]string, 0, len(svc.Spec.Ports))
			for _, p := range svc.Spec.Ports {
				names = append(names, p.Name)
			}
			return names
		}, timeout, interval).Should(Equal([]string{"logobj", "statobj"}))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("UpdatedService"))

		By("undoing a replica change made on the StatefulSet behind the TServer's back")
		update(sts, func() { sts.Spec.Replicas = ptr.To[int32](9) })
		Eventually(func() int32 { return *statefulSetOf(ts).Spec.Replicas }, timeout, interval).Should(Equal(int32(3)))
	})

	It("runs no pods without a release", func() {
		ts.Spec.Release = nil
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		Expect(*statefulSetOf(ts).Spec.Replicas).To(BeZero())
	})

	It("recreates the StatefulSet, orphaning its pods, when a local volume is added", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		old := statefulSetOf(ts)

		edit(ts, func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
				Name: "data", MountPath: "/data",
				Source: tarsv1beta1.TK8SMountSource{TLocalVolume: &tarsv1beta1.TLocalVolume{UID: "0", GID: "0", Mode: "711"}},
			})
		})
		By("deleting the old one with orphan propagation")
		Eventually(func(g Gomega) {
			sts := &appsv1.StatefulSet{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), sts)).To(Succeed())
			g.Expect(sts.UID).To(Equal(old.UID))
			g.Expect(sts.DeletionTimestamp).NotTo(BeNil())
			g.Expect(sts.Finalizers).To(ContainElement(metav1.FinalizerOrphanDependents))
		}, timeout, interval).Should(Succeed())
		Eventually(conditionOf(ts, tarsv1beta1.ConditionReady),
			timeout, interval).Should(HaveField("Reason", "RecreatingStatefulSet"))

		By("creating the new one once the garbage collector has orphaned the pods")
		orphaned := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ts.Name}}
		update(orphaned, func() { orphaned.Finalizers = nil }) // what the garbage collector does after orphaning
		Eventually(func(g Gomega) {
			sts := &appsv1.StatefulSet{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), sts)).To(Succeed())
			g.Expect(sts.UID).NotTo(Equal(old.UID))
			g.Expect(expand.ClaimTemplateNames(sts)).To(Equal([]string{"remote-log-dir", "data"}))
		}, timeout, interval).Should(Succeed())
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("RecreatingStatefulSet"))
	})

	It("replaces the adopted pods that lack an added claim template's volume: lowest ordinal first, "+
		"one at a time while the others are ready", func() {
		sts := recreatedWithData(ts)
		By("the new StatefulSet adopting the old pods, which mount only remote-log-dir, all ready")
		pod0, pod1 := podOf(sts, 0, true, true, "remote-log-dir"), podOf(sts, 1, true, true, "remote-log-dir")
		update(sts, func() {
			sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 2, ReadyReplicas: 2}
		})
		Eventually(podExists(pod0), timeout, interval).Should(BeFalse())
		Consistently(podExists(pod1), 2*waitInterval, interval).Should(BeTrue(), "replaced while replica 0 is down")
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("ReplacingPod"))

		By("replica 0 back with both volumes, not ready yet: replica 1 waits; ready: it goes")
		pod0 = podOf(sts, 0, false, true, "remote-log-dir", "data")
		Consistently(podExists(pod1), 2*waitInterval, interval).Should(BeTrue(), "replaced while replica 0 is not ready")
		pod0.Status.Conditions[0].Status = corev1.ConditionTrue
		Expect(k8sClient.Status().Update(ctx, pod0)).To(Succeed())
		Eventually(podExists(pod1), timeout, interval).Should(BeFalse())

		By("a pod without the volume that is not ready goes at once; one with every volume stays")
		pod1 = podOf(sts, 1, false, true, "remote-log-dir")
		Eventually(podExists(pod1), timeout, interval).Should(BeFalse())
		Expect(podExists(pod0)()).To(BeTrue())
	})

	It("waits for a replica not adopted yet, but not for one a scale-down removes, "+
		"before replacing a pod without an added claim", func() {
		sts := recreatedWithData(ts)
		By("replica 1 not ready and not adopted yet: replica 0 stays")
		pod0 := podOf(sts, 0, true, true, "remote-log-dir")
		pod1 := podOf(sts, 1, false, false, "remote-log-dir")
		update(sts, func() {
			sts.Status = appsv1.StatefulSetStatus{ObservedGeneration: sts.Generation, Replicas: 2, ReadyReplicas: 1}
		})
		Consistently(podExists(pod0), 2*waitInterval, interval).Should(BeTrue(), "replaced while replica 1 is not ready")
		Expect(podExists(pod1)()).To(BeTrue(), "deleted a pod the StatefulSet does not control")

		By("replica 1 replaced and ready, replica 2 left by a scale-up that was undone, not ready: replica 0 goes")
		Expect(k8sClient.Delete(ctx, pod1)).To(Succeed())
		podOf(sts, 1, true, true, "remote-log-dir", "data")
		pod2 := podOf(sts, 2, false, true, "remote-log-dir", "data")
		Eventually(podExists(pod0), timeout, interval).Should(BeFalse())
		Expect(podExists(pod2)()).To(BeTrue())
	})

	It("recreates the StatefulSet with a delay-bind claim when host networking is turned on", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.HostNetwork = true })
		Eventually(func() *metav1.Time {
			return statefulSetOf(ts).DeletionTimestamp
		}, timeout, interval).ShouldNot(BeNil())
	})

	It("re-annotates existing claims when uid, gid or mode change", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		tpl := expand.ClaimTemplates(ts)[0]
		claims := []*corev1.PersistentVolumeClaim{
			claimOf(ts, "remote-log-dir", 0, tpl.Annotations),
			claimOf(ts, "remote-log-dir", 1, nil),
		}

		edit(ts, func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Mounts[0].Source.TLocalVolume = &tarsv1beta1.TLocalVolume{UID: "2000", GID: "100", Mode: "711"}
		})
		for _, pvc := range claims {
			Eventually(func() map[string]string {
				got := &corev1.PersistentVolumeClaim{}
				Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), got)).To(Succeed())
				return got.Annotations
			}, timeout, interval).Should(Equal(map[string]string{
				"tars.io/LocalVolumeUID": "2000", "tars.io/LocalVolumeGID": "100", "tars.io/LocalVolumeMode": "711",
			}))
		}
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("ReannotatedClaims")) // events are sent apart
		By("keeping the StatefulSet, whose claim templates cannot change")
		Expect(statefulSetOf(ts).DeletionTimestamp).To(BeNil())
	})

	It("deletes the claims of a removed local volume once no pod uses them", func() {
		ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
			Name: "cache", MountPath: "/cache",
			Source: tarsv1beta1.TK8SMountSource{TLocalVolume: &tarsv1beta1.TLocalVolume{UID: "0", GID: "0", Mode: "755"}},
		})
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		kept := claimOf(ts, "remote-log-dir", 0, nil)
		removed := claimOf(ts, "cache", 0, nil)
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "tars-tarslog-0", Namespace: ns, Labels: expand.PodLabels(ts)},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "c", Image: "x"}},
				Volumes: []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{
					PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: removed.Name},
				}}},
			},
		}
		Expect(k8sClient.Create(ctx, pod)).To(Succeed())

		edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts = ts.Spec.K8S.Mounts[:1] })
		Eventually(func() *metav1.Time { return statefulSetOf(ts).DeletionTimestamp }, timeout, interval).ShouldNot(BeNil())
		orphaned := statefulSetOf(ts)
		update(orphaned, func() { orphaned.Finalizers = nil })
		Eventually(func() []string { return expand.ClaimTemplateNames(statefulSetOf(ts)) }, timeout, interval).
			Should(Equal([]string{"remote-log-dir"}))

		By("keeping the claim while a pod still mounts it")
		Consistently(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(removed), &corev1.PersistentVolumeClaim{})
		}, 2*time.Second, interval).Should(Succeed())

		By("deleting it once the pod is gone")
		Expect(k8sClient.Delete(ctx, pod, client.GracePeriodSeconds(0))).To(Succeed())
		Eventually(func() bool {
			got := &corev1.PersistentVolumeClaim{}
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(removed), got)
			return apierrors.IsNotFound(err) || (err == nil && got.DeletionTimestamp != nil)
		}, 3*waitInterval, interval).Should(BeTrue())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(kept), &corev1.PersistentVolumeClaim{})).To(Succeed())
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("DeletedClaim"))
	})

	It("never touches a StatefulSet or Service of the same name that it does not own", func() {
		foreign := &appsv1.StatefulSet{
			ObjectMeta: metav1.ObjectMeta{Name: ts.Name, Namespace: ns},
			Spec: appsv1.StatefulSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "other"}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "other"}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "other"}}},
				},
			},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())

		Eventually(conditionOf(ts, tarsv1beta1.ConditionReady), timeout, interval).Should(And(
			Not(BeNil()),
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", "Conflict"),
			HaveField("Message", ContainSubstring("StatefulSet tars-tarslog exists and is not owned by this TServer")),
		))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("Conflict"))
		got := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), got)).To(Succeed())
		Expect(got.ResourceVersion).To(Equal(foreign.ResourceVersion))
		Expect(got.OwnerReferences).To(BeEmpty())
	})

	It("adopts the StatefulSet and Service that a deleted TServer of the same name left behind; "+
		"not those of a TServer of another name", func() {
		// envtest runs no garbage collector: as when it missed the deletion of the first TServer.
		Expect(k8sClient.Create(ctx, ts.DeepCopy())).To(Succeed())
		first := &tarsv1beta1.TServer{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), first)).To(Succeed())
		sts := statefulSetOf(ts)
		svc := &corev1.Service{}
		Eventually(func() error { return k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), svc) },
			timeout, interval).Should(Succeed())
		Expect(k8sClient.Delete(ctx, first)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), &tarsv1beta1.TServer{}))
		}, timeout, interval).Should(BeTrue())

		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		Expect(ts.UID).NotTo(Equal(first.UID))
		for _, obj := range []client.Object{&appsv1.StatefulSet{}, &corev1.Service{}} {
			Eventually(func(g Gomega) {
				g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), obj)).To(Succeed())
				g.Expect(metav1.GetControllerOf(obj)).To(HaveField("UID", ts.UID))
			}, timeout, interval).Should(Succeed())
		}
		adopted := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), adopted)).To(Succeed())
		Expect(adopted.UID).To(Equal(sts.UID), "made anew, not adopted")
		Expect(adopted.OwnerReferences).To(HaveLen(1))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElements("AdoptedStatefulSet", "AdoptedService"))
		Eventually(conditionOf(ts, tarsv1beta1.ConditionReady), timeout, interval).ShouldNot(HaveField("Reason", "Conflict"))

		By("made again for server TarsLog, whose selector the StatefulSet cannot take: " +
			"deleted, as the collector would, and made anew")
		Expect(k8sClient.Delete(ctx, ts)).To(Succeed())
		Eventually(func() bool {
			return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), &tarsv1beta1.TServer{}))
		}, timeout, interval).Should(BeTrue())
		renamed := tarslogIn(ns)
		renamed.Spec.Server = "TarsLog" // the same TServer name, lower(app)-lower(server)
		Expect(k8sClient.Create(ctx, renamed)).To(Succeed())
		Eventually(func(g Gomega) {
			got := &appsv1.StatefulSet{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(renamed), got)).To(Succeed())
			g.Expect(got.UID).NotTo(Equal(sts.UID))
			g.Expect(metav1.GetControllerOf(got)).To(HaveField("UID", renamed.UID))
			g.Expect(got.Spec.Selector.MatchLabels).To(HaveKeyWithValue(tarsv1beta1.LabelServerName, "TarsLog"))
		}, timeout, interval).Should(Succeed())
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("DeletedStatefulSet"))

		By("a StatefulSet controlled by a TServer of another name stays someone else's")
		other := tarslogIn(newNamespace())
		other.Name, other.Spec.Server = "tars-other", "other"
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		foreign := statefulSetOf(other).DeepCopy()
		foreign.ObjectMeta = metav1.ObjectMeta{Namespace: other.Namespace, Name: "tars-stolen",
			OwnerReferences: foreign.OwnerReferences}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		stolen := tarslogIn(other.Namespace)
		stolen.Name, stolen.Spec.Server = "tars-stolen", "stolen"
		Expect(k8sClient.Create(ctx, stolen)).To(Succeed())
		Eventually(conditionOf(stolen, tarsv1beta1.ConditionReady), timeout, interval).Should(HaveField("Reason", "Conflict"))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
		Expect(metav1.GetControllerOf(foreign)).To(HaveField("Name", "tars-other"))
	})

	It("says on VolumesBound why a storage class provisions nothing", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		Eventually(conditionOf(ts, tarsv1beta1.ConditionVolumesBound),
			timeout, interval).Should(HaveField("Reason", "ClaimsPending"))

		By("replacing t-storage-class with TarsK8S's, which provisions nothing")
		useStorageClass(tarsv1beta1.NoProvisioner)
		DeferCleanup(useStorageClass, tarsv1beta1.Provisioner)
		edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 3 }) // a reconcile now
		Eventually(conditionOf(ts, tarsv1beta1.ConditionVolumesBound), timeout, interval).Should(And(
			HaveField("Reason", "StorageClassNotProvisioning"),
			HaveField("Message", ContainSubstring("has provisioner kubernetes.io/no-provisioner, not tars.io/local-volume")),
			HaveField("Message", ContainSubstring("3 of 3 claim(s) not bound yet")),
		))
	})

	It("warns when the same server runs in another namespace", func() {
		// A server of its own: other tests leave tarslog in their namespaces.
		rename := func(ts *tarsv1beta1.TServer) *tarsv1beta1.TServer {
			ts.Spec.Server = "twice"
			ts.Name = tarsv1beta1.ResourceName(ts.Spec.App, ts.Spec.Server)
			return ts
		}
		Expect(k8sClient.Create(ctx, rename(ts))).To(Succeed())
		statefulSetOf(ts)
		other := rename(tarslogIn(newNamespace()))
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		Eventually(eventReasons(other.Namespace), timeout, interval).Should(ContainElement("SameServerInAnotherNamespace"))
		Consistently(eventReasons(ns), time.Second, interval).ShouldNot(ContainElement("SameServerInAnotherNamespace"),
			"the first had no other when it was made")
	})

	It("labels node-local claims with the node of their pod, where no admission policy does", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		pvc := claimOf(ts, "remote-log-dir", 0, map[string]string{"volume.kubernetes.io/selected-node": "node-1"})
		selectedNode := func() (string, bool) {
			got := &corev1.PersistentVolumeClaim{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), got)).To(Succeed())
			v, ok := got.Labels[tarsv1beta1.LabelSelectedNode]
			return v, ok
		}
		Eventually(func() string { v, _ := selectedNode(); return v }, timeout, interval).Should(Equal("node-1"))

		By("taking the label away when the claim is handed back to the scheduler")
		update(pvc, func() { delete(pvc.Annotations, "volume.kubernetes.io/selected-node") })
		Eventually(func() bool { _, ok := selectedNode(); return ok }, timeout, interval).Should(BeFalse())

		By("leaving a claim that is not node-local alone")
		other := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "other", Namespace: ns, Labels: expand.PodLabels(ts),
				Annotations: map[string]string{"volume.kubernetes.io/selected-node": "node-1"}},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
				},
			},
		}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		Consistently(func() map[string]string {
			got := &corev1.PersistentVolumeClaim{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(other), got)).To(Succeed())
			return got.Labels
		}, time.Second, interval).ShouldNot(HaveKey(tarsv1beta1.LabelSelectedNode))
	})

	It("refuses a scale to two billion replicas, or reconciles it harmlessly, "+
		"and keeps reconciling other servers", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)

		By("scaling it as `kubectl scale` does, through the scale subresource, which no webhook sees")
		scale := &autoscalingv1.Scale{}
		Expect(k8sClient.SubResource("scale").Get(ctx, ts, scale)).To(Succeed())
		scale.Spec.Replicas = 2_000_000_000
		if err := k8sClient.SubResource("scale").Update(ctx, ts, client.WithSubResourceBody(scale)); err != nil {
			By("refused by the schema: the StatefulSet keeps its replicas")
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring("spec.k8s.replicas"))
			Expect(err.Error()).To(ContainSubstring(fmt.Sprint(tarsv1beta1.MaxReplicas)))
			Consistently(func() int32 { return *statefulSetOf(ts).Spec.Replicas }, time.Second, interval).Should(Equal(int32(2)))
		} else {
			By("accepted: the status counts the claims missing")
			Eventually(conditionOf(ts, tarsv1beta1.ConditionVolumesBound), timeout, interval).Should(
				HaveField("Message", HavePrefix("2000000000 of 2000000000 claim(s) not bound yet")))
		}

		By("reconciling another server meanwhile")
		other := tarslogIn(ns)
		other.Spec.Server = "tarsother"
		other.Name = tarsv1beta1.ResourceName(other.Spec.App, other.Spec.Server)
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		statefulSetOf(other)
		Eventually(conditionOf(other, tarsv1beta1.ConditionVolumesBound), timeout, interval).Should(
			HaveField("Message", HavePrefix("2 of 2 claim(s) not bound yet")))
	})

	It("says on VolumesHealthy which replica's volume directory a node agent finds missing", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		statefulSetOf(ts)
		claimOf(ts, "remote-log-dir", 0, nil)
		pvc := claimOf(ts, "remote-log-dir", 1, nil)
		Eventually(conditionOf(ts, tarsv1beta1.ConditionVolumesHealthy), timeout, interval).Should(And(
			Not(BeNil()), HaveField("Status", metav1.ConditionTrue), HaveField("Reason", tarsv1beta1.ReasonAllVolumesHealthy)))

		By("annotating a claim as the node agent does when the directory is gone")
		report := "directory /usr/local/app/tars/host-mount/" + ns +
			"/tars.tarslog/remote-log-dir of volume pv-1 is missing " +
			"on node node-1 (a data disk not mounted?); the agent does not recreate it empty"
		update(pvc, func() {
			if pvc.Annotations == nil {
				pvc.Annotations = map[string]string{}
			}
			pvc.Annotations[tarsv1beta1.AnnotationVolumeProblem] = report
		})
		Eventually(conditionOf(ts, tarsv1beta1.ConditionVolumesHealthy), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse),
			HaveField("Reason", tarsv1beta1.ReasonVolumeDirectoryMissing),
			HaveField("Message", ContainSubstring("replica tars-tarslog-1 (claim remote-log-dir-tars-tarslog-1): "+report)),
			HaveField("Message", Not(ContainSubstring("tars-tarslog-0"))),
		))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement(tarsv1beta1.ReasonVolumeDirectoryMissing))

		By("turning true again once the agent takes the annotation away")
		update(pvc, func() { delete(pvc.Annotations, tarsv1beta1.AnnotationVolumeProblem) })
		Eventually(conditionOf(ts, tarsv1beta1.ConditionVolumesHealthy), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionTrue), HaveField("Reason", tarsv1beta1.ReasonAllVolumesHealthy)))
	})

	It("reports ready replicas and bound claims from the StatefulSet and claims", func() {
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		sts := statefulSetOf(ts)
		for i := range 2 {
			pvc := claimOf(ts, "remote-log-dir", i, nil)
			// The controller annotates the claim meanwhile: retry on conflicts.
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
					return err
				}
				pvc.Status.Phase = corev1.ClaimBound
				return k8sClient.Status().Update(ctx, pvc)
			})).To(Succeed())
		}
		Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(sts), sts); err != nil {
				return err
			}
			sts.Status = appsv1.StatefulSetStatus{
				ObservedGeneration: sts.Generation, Replicas: 2, ReadyReplicas: 2, CurrentReplicas: 2, UpdatedReplicas: 2,
			}
			return k8sClient.Status().Update(ctx, sts)
		})).To(Succeed())

		Eventually(conditionOf(ts, tarsv1beta1.ConditionReady),
			timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))
		Eventually(conditionOf(ts, tarsv1beta1.ConditionVolumesBound),
			timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))
		got := &tarsv1beta1.TServer{}
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: ts.Name}, got)).To(Succeed())
		Expect(got.Status.Replicas).To(Equal(int32(2)))
		Expect(got.Status.ReadyReplicas).To(Equal(int32(2)))
		Expect(got.Status.CurrentReplicas).To(Equal(int32(2)))
	})
})

func TestSpecHash(t *testing.T) {
	hash := func(mutate func(*tarsv1beta1.TServer)) string {
		ts := tarslog(t)
		mutate(ts)
		h, err := specHash(expand.StatefulSet(ts))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	base := hash(func(*tarsv1beta1.TServer) {})
	if base != hash(func(*tarsv1beta1.TServer) {}) {
		t.Error("hash not stable")
	}
	for name, mutate := range map[string]func(*tarsv1beta1.TServer){
		"replicas": func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 7 },
		"uid":      func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts[0].Source.TLocalVolume.UID = "7" },
	} {
		if hash(mutate) != base {
			t.Errorf("changing %s changed the hash: it is handled without updating the pod template", name)
		}
	}
	for name, mutate := range map[string]func(*tarsv1beta1.TServer){
		"env":     func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Env = nil },
		"image":   func(ts *tarsv1beta1.TServer) { ts.Spec.Release.Image = "x:2" },
		"hostIPC": func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.HostIPC = true },
	} {
		if hash(mutate) == base {
			t.Errorf("changing %s left the hash as it was", name)
		}
	}
}
