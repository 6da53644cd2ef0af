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
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "agent-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// newClaim creates the claim the StatefulSet controller makes from a tLocalVolume claim template
// of server tars.tarslog.
func newClaim(ns, volume string, ordinal int, annotations map[string]string) *corev1.PersistentVolumeClaim {
	return newServerClaim(ns, "tarslog", volume, ordinal, annotations)
}

// newServerClaim is newClaim for server tars.<server>.
func newServerClaim(ns, server, volume string, ordinal int,
	annotations map[string]string) *corev1.PersistentVolumeClaim {
	labels := map[string]string{
		tarsv1beta1.LabelServerApp: "tars", tarsv1beta1.LabelServerName: server, tarsv1beta1.LabelLocalVolume: volume,
	}
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-tars-%s-%d", volume, server, ordinal), Namespace: ns, Labels: labels, Annotations: annotations,
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			},
			Selector:         &metav1.LabelSelector{MatchLabels: labels},
			StorageClassName: new(testStorage),
			VolumeMode:       new(corev1.PersistentVolumeFilesystem),
		},
	}
	Expect(k8sClient.Create(ctx, pvc)).To(Succeed())
	return pvc
}

var seedOwnership = map[string]string{
	tarsv1beta1.AnnotationLocalVolumeUID:  "1000",
	tarsv1beta1.AnnotationLocalVolumeGID:  "0",
	tarsv1beta1.AnnotationLocalVolumeMode: "755",
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

// eventsAbout lists the events about an object of kind and name, of any namespace (those about
// a cluster-scoped object are in default).
func eventsAbout(kind, name string) []eventsv1.Event {
	list := &eventsv1.EventList{}
	Expect(k8sClient.List(ctx, list)).To(Succeed())
	return slices.DeleteFunc(list.Items, func(e eventsv1.Event) bool {
		return e.Regarding.Kind != kind || e.Regarding.Name != name
	})
}

// pvEventReasons lists the reasons of the events about volume name.
func pvEventReasons(name string) func() []string {
	return func() []string {
		events := eventsAbout("PersistentVolume", name)
		reasons := make([]string, 0, len(events))
		for _, e := range events {
			reasons = append(reasons, e.Reason)
		}
		return reasons
	}
}

// eventNotes lists the notes of the events about an object of kind and name, of the reasons
// given, or of any reason.
func eventNotes(kind, name string, reasons ...string) func() []string {
	return func() []string {
		var notes []string
		for _, e := range eventsAbout(kind, name) {
			if len(reasons) == 0 || slices.Contains(reasons, e.Reason) {
				notes = append(notes, e.Note)
			}
		}
		return notes
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

// schedule does what the scheduler does when it puts the pod of pvc on node: it names the node
// on the claim.
func schedule(pvc *corev1.PersistentVolumeClaim, node string) {
	Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return err
		}
		if pvc.Annotations == nil {
			pvc.Annotations = map[string]string{}
		}
		pvc.Annotations["volume.kubernetes.io/selected-node"] = node
		if labelByHand {
			if pvc.Labels == nil {
				pvc.Labels = map[string]string{}
			}
			pvc.Labels[tarsv1beta1.LabelSelectedNode] = tarsv1beta1.SelectedNodeLabelValue(node)
		}
		return k8sClient.Update(ctx, pvc)
	}, timeout, interval).Should(Succeed())
}

// provisioned schedules pvc on node and waits for the volume the agent makes for it there.
func provisioned(pvc *corev1.PersistentVolumeClaim, node string) *corev1.PersistentVolume {
	schedule(pvc, node)
	name := volumeOn(node, pvc.Namespace, pvc.Labels[tarsv1beta1.LabelLocalVolume])
	Eventually(pvExists(name), timeout, interval).Should(BeTrue(), "volume %s", name)
	pv, err := getPV(name)()
	Expect(err).NotTo(HaveOccurred())
	return pv
}

// bind does what the PV controller does when it completes the binding of pvc to the volume the
// agent made for it.
func bind(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) {
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
	Expect(pv.Spec.ClaimRef).NotTo(BeNil())
	Expect(pv.Spec.ClaimRef.UID).To(Equal(pvc.UID))
	setPhase(pv.Name, corev1.VolumeBound)
	// The agent may write the claim meanwhile (a label, a report): retry on conflicts.
	Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return err
		}
		pvc.Spec.VolumeName = pv.Name
		return k8sClient.Update(ctx, pvc)
	}, timeout, interval).Should(Succeed())
	Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc); err != nil {
			return err
		}
		pvc.Status.Phase = corev1.ClaimBound
		return k8sClient.Status().Update(ctx, pvc)
	}, timeout, interval).Should(Succeed())
}

// madeBeforehand creates the unbound, Available volume TarsK8S's agent of node made for group
// (namespace, remote-log-dir) before any claim was scheduled.
func madeBeforehand(node, ns string) *corev1.PersistentVolume {
	a := agents[node]
	cfg := Config{NodeName: node, Hostname: a.hostname, HostRoot: hostRoot, StorageClassName: testStorage}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Labels: map[string]string{
		tarsv1beta1.LabelServerApp:   "tars",
		tarsv1beta1.LabelServerName:  "tarslog",
		tarsv1beta1.LabelLocalVolume: "remote-log-dir",
	}}}
	pv := cfg.Volume(claim, corev1.PersistentVolumeReclaimDelete)
	pv.Spec.ClaimRef = nil
	Expect(os.MkdirAll(dirOn(node, ns, "remote-log-dir"), 0o755)).To(Succeed())
	Expect(k8sClient.Create(ctx, pv)).To(Succeed())
	setPhase(pv.Name, corev1.VolumeAvailable)
	return pv
}

// selectedNode is the node the scheduler named on a claim; "" when none.
func selectedNode(pvc *corev1.PersistentVolumeClaim) func() string {
	return func() string {
		got := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), got)).To(Succeed())
		return got.Annotations["volume.kubernetes.io/selected-node"]
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

// deleteClaim deletes a claim and waits until it is gone, doing what Kubernetes' PVC protection
// controller does for a claim no pod uses: remove its kubernetes.io/pvc-protection finalizer.
func deleteClaim(pvc *corev1.PersistentVolumeClaim) {
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, pvc))).To(Succeed())
	Eventually(func() bool {
		got := &corev1.PersistentVolumeClaim{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), got); err != nil {
			return true
		}
		if len(got.Finalizers) > 0 {
			got.Finalizers = nil
			_ = k8sClient.Update(ctx, got)
		}
		return false
	}, timeout, interval).Should(BeTrue())
}

// release does what the PV controller does once the claim of a bound volume is gone.
func release(pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) {
	deleteClaim(pvc)
	setPhase(pv.Name, corev1.VolumeReleased)
}

// boundWithData makes the claim of replica 0 of remote-log-dir, has node's agent provision its
// volume, binds them, and writes a sentinel file into the directory.
func boundWithData(ns, node string) (*corev1.PersistentVolumeClaim, *corev1.PersistentVolume, string) {
	pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
	pv := provisioned(pvc, node)
	bind(pvc, pv)
	return pvc, pv, writeSentinel(dirOn(node, ns, "remote-log-dir"))
}

// boundFleet makes n claims of server tars.tarslog in ns (volumes v0 to v<n-1>, replica 0), has
// node's agent provision their volumes, binds them, and writes a sentinel file into each
// directory.
func boundFleet(ns, node string, n int) ([]*corev1.PersistentVolumeClaim, []*corev1.PersistentVolume) {
	claims := make([]*corev1.PersistentVolumeClaim, 0, n)
	volumes := make([]*corev1.PersistentVolume, 0, n)
	for i := range n {
		pvc := newClaim(ns, fmt.Sprintf("v%d", i), 0, seedOwnership)
		pv := provisioned(pvc, node)
		bind(pvc, pv)
		writeSentinel(dirOn(node, ns, fmt.Sprintf("v%d", i)))
		claims, volumes = append(claims, pvc), append(volumes, pv)
	}
	return claims, volumes
}

// releaseFleet deletes the claims, then releases their volumes at once, as the PV controller
// does when a fleet is deleted.
func releaseFleet(claims []*corev1.PersistentVolumeClaim, volumes []*corev1.PersistentVolume) {
	By(fmt.Sprintf("releasing the %d volumes at once, as a deleted fleet's", len(volumes)))
	for _, pvc := range claims {
		deleteClaim(pvc)
	}
	var released sync.WaitGroup
	for _, pv := range volumes {
		released.Go(func() {
			defer GinkgoRecover()
			setPhase(pv.Name, corev1.VolumeReleased)
		})
	}
	released.Wait()
}

// meanwhileClaim is the claim scheduledMeanwhile makes: replica 1 of remote-log-dir.
const meanwhileClaim = "remote-log-dir-tars-tarslog-1"

// readingClaim is an agent client's Get that sets read when the agent reads meanwhileClaim.
func readingClaim(ns string, read *atomic.Bool) func(context.Context, client.WithWatch, client.ObjectKey,
	client.Object, ...client.GetOption) error {
	return func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object,
		opts ...client.GetOption) error {
		meanwhile := client.ObjectKey{Namespace: ns, Name: meanwhileClaim}
		if _, ok := obj.(*corev1.PersistentVolumeClaim); ok && key == meanwhile {
			read.Store(true)
		}
		return c.Get(ctx, key, obj, opts...)
	}
}

// scheduledMeanwhile makes meanwhileClaim and schedules it on node, from inside one of the
// agent's requests or writes (which waits meanwhile): it returns once the agent has read the
// claim (readingClaim sets read) and had time to find the volume of its group on node released,
// its cleanup under way, and to leave the claim waiting there.
func scheduledMeanwhile(ns, node string, read *atomic.Bool) *corev1.PersistentVolumeClaim {
	fresh := newClaim(ns, "remote-log-dir", 1, seedOwnership)
	read.Store(false)
	schedule(fresh, node)
	Eventually(read.Load, timeout, interval).Should(BeTrue(), "the agent reading the claim to judge it")
	time.Sleep(500 * time.Millisecond)
	Expect(selectedNode(fresh)()).To(Equal(node), "the claim waiting for the cleanup")
	return fresh
}

// cleanupFailing runs an agent on node whose deletes of volumes fail, always when lasting, else
// once; has it provision and bind a volume with data, releases it, and schedules meanwhileClaim
// on node during the first failing delete. It returns that claim, the released volume and the
// sentinel file of its data.
func cleanupFailing(ns, nodeName, hostname string, lasting bool) (*corev1.PersistentVolumeClaim,
	*corev1.PersistentVolume, string) {
	var failing, read atomic.Bool
	var waiting atomic.Pointer[corev1.PersistentVolumeClaim]
	agentOnNewNode(nodeName, hostname, agentOptions{disk: &roomyDisk, orphanScan: time.Hour,
		funcs: &interceptor.Funcs{
			Get: readingClaim(ns, &read),
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				defer GinkgoRecover()
				pv, ok := obj.(*corev1.PersistentVolume)
				if !ok || !strings.HasPrefix(pv.Name, ns+"-") || !failing.Load() {
					return c.Delete(ctx, obj, opts...)
				}
				if waiting.Load() == nil {
					By("a new claim of the group scheduled here while the cleanup deletes the volume")
					waiting.Store(scheduledMeanwhile(ns, nodeName, &read))
				}
				failing.Store(lasting)
				return apierrors.NewForbidden(corev1.Resource("persistentvolumes"), pv.Name,
					errors.New("denied by a policy"))
			},
		}})
	pvc, pv, sentinel := boundWithData(ns, nodeName)
	By("the claim deleted: its volume is released, and its delete fails")
	failing.Store(true)
	release(pvc, pv)
	Eventually(waiting.Load, timeout, interval).ShouldNot(BeNil())
	return waiting.Load(), pv, sentinel
}

// claimReadFailing runs an agent on a new node that supports local volumes, has it provision a
// volume with data and releases it, refusing the agent's reads of the released claim from the
// API server: every one if lasting, else the first. A new claim of the group is scheduled there
// from inside the first refused read (scheduledMeanwhile). It returns that claim, the released
// volume and the path of the sentinel file in its directory.
func claimReadFailing(ns, nodeName, hostname string, lasting bool) (*corev1.PersistentVolumeClaim,
	*corev1.PersistentVolume, string) {
	var read atomic.Bool
	var hidden atomic.Pointer[string]
	var released atomic.Pointer[corev1.PersistentVolume]
	var waiting atomic.Pointer[corev1.PersistentVolumeClaim]
	agentOnNewNode(nodeName, hostname, agentOptions{disk: &roomyDisk, orphanScan: time.Hour,
		funcs: &interceptor.Funcs{Get: readingClaim(ns, &read)},
		answer: func(req *http.Request) *http.Response {
			defer GinkgoRecover()
			if path := hidden.Load(); path == nil || req.Method != http.MethodGet || req.URL.Path != *path {
				return nil
			}
			// Only the cleanup's reads: the agent reads the claim of a bound volume too.
			if pv, err := getPV(released.Load().Name)(); err != nil || pv.Status.Phase != corev1.VolumeReleased {
				return nil
			}
			if waiting.Load() == nil {
				By("a new claim of the group scheduled here while the cleanup reads the released claim")
				waiting.Store(scheduledMeanwhile(ns, nodeName, &read))
			}
			if !lasting {
				hidden.Store(nil)
			}
			return forbidden(req, "claims hidden from the agent by the test")
		}})
	pvc, pv, sentinel := boundWithData(ns, nodeName)
	By("the claim deleted, the agent's reads of it refused: its volume is released")
	released.Store(pv)
	hidden.Store(new("/api/v1/namespaces/" + ns + "/persistentvolumeclaims/" + pvc.Name))
	release(pvc, pv)
	Eventually(waiting.Load, timeout, interval).ShouldNot(BeNil())
	return waiting.Load(), pv, sentinel
}

// forbidden is the API server's answer to req refusing it, saying why.
func forbidden(req *http.Request, why string) *http.Response {
	body, err := json.Marshal(&metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden, Message: why,
	})
	Expect(err).NotTo(HaveOccurred())
	return &http.Response{StatusCode: http.StatusForbidden, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewReader(body)), Request: req}
}

// claimOfVolumeAfter finishes the deletion of released volume old once the agent deleted it (as
// Kubernetes' PV protection would), and reads the uid of the claim that the volume of the same
// name made after it is bound to ("" until there is one).
func claimOfVolumeAfter(old *corev1.PersistentVolume) func() types.UID {
	return func() types.UID {
		pv, err := getPV(old.Name)()
		if err == nil && pv.UID == old.UID {
			finishDeletion(pv)
		}
		if err != nil || pv.UID == old.UID || pv.Spec.ClaimRef == nil {
			return ""
		}
		return pv.Spec.ClaimRef.UID
	}
}

// expectKept checks that volume pv stays and the sentinel file keeps its data.
func expectKept(pv, sentinel string) {
	Consistently(pvExists(pv), time.Second, interval).Should(BeTrue())
	Expect(os.ReadFile(sentinel)).To(Equal([]byte("precious")))
}

// writeSentinel puts a file into a volume directory, as a service would, and returns its path.
func writeSentinel(dir string) string {
	file := filepath.Join(dir, "sentinel")
	Expect(os.WriteFile(file, []byte("precious"), 0o644)).To(Succeed())
	return file
}

// claimAnnotation reads an annotation of a claim afresh.
func claimAnnotation(pvc *corev1.PersistentVolumeClaim, key string) func() string {
	return func() string {
		got := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), got)).To(Succeed())
		return got.Annotations[key]
	}
}

// tserverStatefulSet creates the StatefulSet a TServer named tars-tarslog makes for a server with
// host networking: controlled by the TServer, with a delay-bind claim template.
func tserverStatefulSet(ns string) {
	labels := map[string]string{
		tarsv1beta1.LabelServerApp: "tars", tarsv1beta1.LabelServerName: "tarslog",
	}
	template := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
		Name: tarsv1beta1.DelayBindVolumeName,
		Labels: map[string]string{
			tarsv1beta1.LabelServerApp:   "tars",
			tarsv1beta1.LabelServerName:  "tarslog",
			tarsv1beta1.LabelLocalVolume: tarsv1beta1.DelayBindVolumeName,
		},
	}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		Resources: corev1.VolumeResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
		},
	}}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "tars-tarslog", Namespace: ns, OwnerReferences: []metav1.OwnerReference{{
			APIVersion: tarsv1beta1.GroupVersion.String(), Kind: "TServer", Name: "tars-tarslog", UID: "0000-tserver",
			Controller: new(true),
		}}},
		Spec: appsv1.StatefulSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "server", Image: "tars"}}},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{template},
		},
	}
	Expect(k8sClient.Create(ctx, sts)).To(Succeed())
}

var _ = Describe("The node agent", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("provisions a volume of the exact shape, bound to the claim, on the node selected for its pod", func() {
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		By("doing nothing before the scheduler has picked a node")
		for _, node := range []string{"node-a", "node-b", "node-c"} {
			Consistently(pvExists(volumeOn(node, ns, "remote-log-dir")), 500*time.Millisecond, interval).Should(BeFalse())
		}

		pv := provisioned(pvc, "node-a")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		hostname := agents["node-a"].hostname
		want := corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{
				Path: hostRoot + "/" + ns + "/tars.tarslog/remote-log-dir",
			}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{
					MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: "kubernetes.io/hostname", Operator: "In", Values: []string{hostname},
					}},
				}},
			}},
			ClaimRef: &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: ns, Name: pvc.Name, UID: pvc.UID, ResourceVersion: pvc.ResourceVersion},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              "t-storage-class",
			VolumeMode:                    new(corev1.PersistentVolumeFilesystem),
		}
		Expect(cmp.Diff(want, pv.Spec)).To(BeEmpty())
		Expect(pv.Labels).To(Equal(map[string]string{
			"tars.io/LocalVolume": "remote-log-dir", "tars.io/ServerApp": "tars", "tars.io/ServerName": "tarslog",
			"kubernetes.io/hostname": hostname,
		}))
		Expect(pv.Annotations).To(HaveKeyWithValue("pv.kubernetes.io/provisioned-by", "tserver-agent-node-a"))
		uid, gid, mode, err := statDir(dirOn("node-a", ns, "remote-log-dir"))
		Expect(err).NotTo(HaveOccurred())
		Expect([]any{uid, gid, mode}).To(Equal([]any{uint32(1000), uint32(0), os.FileMode(0o755)}))

		By("marking the volume Bound, a step of the binding the PV controller then skips, and leaving the claim's side to it")
		Eventually(func() (corev1.PersistentVolumePhase, error) {
			pv, err := getPV(pv.Name)()
			return pv.Status.Phase, err
		}, timeout, interval).Should(Equal(corev1.VolumeBound))
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		Expect(pvc.Spec.VolumeName).To(BeEmpty())
		Expect(pvc.Status.Phase).NotTo(Equal(corev1.ClaimBound))

		By("labelling the claim with its node, through the admission policy")
		Expect(pvc.Labels).To(HaveKeyWithValue(tarsv1beta1.LabelSelectedNode, "node-a"))
		if !labelByHand {
			By("naming the provisioner in the claim from its creation, a write the PV controller then skips")
			Expect(pvc.Annotations).To(And(
				HaveKeyWithValue("volume.kubernetes.io/storage-provisioner", "tars.io/local-volume"),
				HaveKeyWithValue("volume.beta.kubernetes.io/storage-provisioner", "tars.io/local-volume")))
		}
		By("making no volume on the other nodes")
		Consistently(pvExists(volumeOn("node-b", ns, "remote-log-dir")), time.Second, interval).Should(BeFalse())
		Expect(dirOn("node-b", ns, "remote-log-dir")).NotTo(BeADirectory())
		Expect(eventReasons(ns)()).To(BeEmpty(), "a volume provisioned without trouble makes no event")
	})

	It("holds in its cache only the claims scheduled on its node", func() {
		onA, onB := newClaim(ns, "remote-log-dir", 0, seedOwnership), newClaim(ns, "remote-log-dir", 1, seedOwnership)
		provisioned(onA, "node-a")
		provisioned(onB, "node-b")
		cached := func(node string) func() []string {
			return func() []string {
				list := &corev1.PersistentVolumeClaimList{}
				Expect(agents[node].cache.List(ctx, list, client.InNamespace(ns))).To(Succeed())
				names := make([]string, 0, len(list.Items))
				for _, pvc := range list.Items {
					names = append(names, pvc.Name)
				}
				return names
			}
		}
		Eventually(cached("node-a"), timeout, interval).Should(ConsistOf(onA.Name))
		Eventually(cached("node-b"), timeout, interval).Should(ConsistOf(onB.Name))
		Expect(cached("node-c")()).To(BeEmpty())
	})

	It("provisions delay-bind volumes on a node without local volume support, "+
		"and defaults missing annotations to 0:0 755", func() {
		tserverStatefulSet(ns)
		pvc := newClaim(ns, tarsv1beta1.DelayBindVolumeName, 0, nil)
		provisioned(pvc, "node-c")
		uid, gid, mode, err := statDir(dirOn("node-c", ns, "delay-bind"))
		Expect(err).NotTo(HaveOccurred())
		Expect([]any{uid, gid, mode}).To(Equal([]any{uint32(0), uint32(0), os.FileMode(0o755)}))
	})

	It("gives the delay-bind exemption only to claims of a TServer's own delay-bind template", func() {
		By("handing back a claim labelled delay-bind that no TServer's StatefulSet makes")
		forged := newClaim(ns, tarsv1beta1.DelayBindVolumeName, 0, nil)
		schedule(forged, "node-c")
		Eventually(selectedNode(forged), timeout, interval).Should(BeEmpty())
		Expect(pvExists(volumeOn("node-c", ns, tarsv1beta1.DelayBindVolumeName))()).To(BeFalse())
		Expect(dirOn("node-c", ns, tarsv1beta1.DelayBindVolumeName)).NotTo(BeADirectory())

		By("and one named otherwise, or of a replica the StatefulSet does not have, " +
			"even with the TServer's StatefulSet there")
		tserverStatefulSet(ns)
		beyond := newClaim(ns, tarsv1beta1.DelayBindVolumeName, 5, nil)
		schedule(beyond, "node-c")
		Eventually(selectedNode(beyond), timeout, interval).Should(BeEmpty())
		odd := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data-for-me", Namespace: ns,
			Labels: forged.Labels}, Spec: forged.Spec}
		Expect(k8sClient.Create(ctx, odd)).To(Succeed())
		schedule(odd, "node-c")
		Eventually(selectedNode(odd), timeout, interval).Should(BeEmpty())
		Expect(pvExists(volumeOn("node-c", ns, tarsv1beta1.DelayBindVolumeName))()).To(BeFalse())
	})

	It("hands a claim back to the scheduler when its node may not hold it", func() {
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		schedule(pvc, "node-c")
		Eventually(selectedNode(pvc), timeout, interval).Should(BeEmpty())
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("ProvisioningFailed"))
		Expect(pvExists(volumeOn("node-c", ns, "remote-log-dir"))()).To(BeFalse())
		Expect(dirOn("node-c", ns, "remote-log-dir")).NotTo(BeADirectory())

		By("and when the node holds the server's volume for another replica already")
		first := newClaim(ns, "remote-log-dir", 1, seedOwnership)
		pv := provisioned(first, "node-a")
		second := newClaim(ns, "remote-log-dir", 2, seedOwnership)
		schedule(second, "node-a")
		Eventually(selectedNode(second), timeout, interval).Should(BeEmpty())
		got, err := getPV(pv.Name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.ClaimRef.Name).To(Equal(first.Name))
	})

	It("provisions none of a pod's claims on a node that cannot serve them all, "+
		"whichever the scheduler names first", func() {
		tserverStatefulSet(ns)
		first := newClaim(ns, "remote-log-dir", 1, seedOwnership)
		firstPV := provisioned(first, "node-a")
		bind(first, firstPV)
		By("a new replica scheduled on the node of replica 1's volume, its delay-bind claim named first (its pod gone since)")
		delayBind := newClaim(ns, tarsv1beta1.DelayBindVolumeName, 2, nil)
		data := newClaim(ns, "remote-log-dir", 2, seedOwnership)
		schedule(delayBind, "node-a")
		Eventually(selectedNode(delayBind), timeout, interval).Should(BeEmpty())
		Expect(eventNotes("PersistentVolumeClaim", delayBind.Name, "ProvisioningFailed")()).To(ContainElement(
			ContainSubstring("claim %s of the same pod tars-tarslog-2 cannot have its volume on this node", data.Name)))
		schedule(data, "node-a")
		Eventually(selectedNode(data), timeout, interval).Should(BeEmpty())
		Consistently(pvExists(volumeOn("node-a", ns, tarsv1beta1.DelayBindVolumeName)),
			time.Second, interval).Should(BeFalse())

		By("nor while replica 1's volume is being deleted: it stays while its claim is used")
		Expect(k8sClient.Delete(ctx, firstPV)).To(Succeed())
		schedule(delayBind, "node-a")
		Eventually(selectedNode(delayBind), timeout, interval).Should(BeEmpty())
		Consistently(pvExists(volumeOn("node-a", ns, tarsv1beta1.DelayBindVolumeName)),
			time.Second, interval).Should(BeFalse())

		By("and both made on a node that can serve them; the first made is not handed back when the node changes")
		delayBindPV := provisioned(delayBind, "node-b")
		other := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		bind(other, provisioned(other, "node-b"))
		setPhase(delayBindPV.Name, corev1.VolumeAvailable) // any change of the volume brings its claim back
		Consistently(selectedNode(delayBind), time.Second, interval).Should(Equal("node-b"))
	})

	It("judges a pod's claims from the API server whenever a volume here bears a name one of them needs", func() {
		tserverStatefulSet(ns)
		By("a volume with the name of replica 2's data volume on node-a, of a server spelt TARS (the same name)")
		name := volumeOn("node-a", ns, "remote-log-dir")
		other := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
				tarsv1beta1.LabelServerApp: "TARS", tarsv1beta1.LabelServerName: "tarslog",
				tarsv1beta1.LabelLocalVolume: "remote-log-dir", corev1.LabelHostname: agents["node-a"].hostname,
			}},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{
					Path: hostRoot + "/" + ns + "/TARS.tarslog/remote-log-dir"}},
				NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
						Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{agents["node-a"].hostname},
					}}}},
				}},
				StorageClassName: testStorage,
			},
		}
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		delayBind := newClaim(ns, tarsv1beta1.DelayBindVolumeName, 2, nil)
		newClaim(ns, "remote-log-dir", 2, seedOwnership)
		schedule(delayBind, "node-a")
		Eventually(selectedNode(delayBind), timeout, interval).Should(BeEmpty())
		Consistently(pvExists(volumeOn("node-a", ns, tarsv1beta1.DelayBindVolumeName)),
			time.Second, interval).Should(BeFalse())
		got, err := getPV(name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(got.ResourceVersion).To(Equal(other.ResourceVersion))
	})

	It("repairs a bound volume's directory changed behind its back, and applies new annotations", func() {
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		bind(pvc, provisioned(pvc, "node-a"))
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
		deletePV, retainPV := provisioned(deleted, "node-a"), provisioned(retained, "node-a")
		bind(deleted, deletePV)
		bind(retained, retainPV)
		for _, volume := range []string{"remote-log-dir", "cache"} {
			Expect(os.WriteFile(filepath.Join(dirOn("node-a", ns, volume), "data.log"), []byte("x"), 0o644)).To(Succeed())
		}
		Eventually(func() error {
			pv, err := getPV(retainPV.Name)()
			if err != nil {
				return err
			}
			pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
			return k8sClient.Update(ctx, pv)
		}, timeout, interval).Should(Succeed())

		By("leaving both alone while they are bound")
		Consistently(func() bool { return pvExists(deletePV.Name)() && pvExists(retainPV.Name)() },
			time.Second, interval).Should(BeTrue())

		release(deleted, deletePV)
		release(retained, retainPV)
		Eventually(pvGone(deletePV.Name), timeout, interval).Should(BeTrue())
		Expect(dirOn("node-a", ns, "remote-log-dir")).NotTo(BeADirectory())
		Eventually(pvEventReasons(deletePV.Name), timeout, interval).Should(ContainElement("CleanedUp"))

		Consistently(pvExists(retainPV.Name), 2*time.Second, interval).Should(BeTrue())
		Expect(filepath.Join(dirOn("node-a", ns, "cache"), "data.log")).To(BeARegularFile())

		By("handing a new claim scheduled there back to the scheduler while the retained data is in the way")
		next := newClaim(ns, "cache", 1, seedOwnership)
		schedule(next, "node-a")
		Eventually(selectedNode(next), timeout, interval).Should(BeEmpty())
		Expect(filepath.Join(dirOn("node-a", ns, "cache"), "data.log")).To(BeARegularFile())
	})

	It("cleans up the released volumes of a deleted fleet with far fewer lists of every volume than volumes, "+
		"keeping the one another volume's directory is in", func() {
		// lists counts the lists of every volume; keptMoved, those read while the directory that a
		// volume made by hand uses was not at its path: it must never be moved.
		var lists, keptMoved atomic.Int64
		var keptDir atomic.Pointer[string]
		agentOnNewNode("node-f", "host-f", agentOptions{disk: &roomyDisk, orphanScan: time.Hour,
			seen: func(req *http.Request) {
				if !isVolumeList(req) {
					return
				}
				lists.Add(1)
				if dir := keptDir.Load(); dir != nil {
					if _, err := os.Stat(*dir); err != nil {
						keptMoved.Add(1)
					}
				}
			}})
		const n = 12
		claims, volumes := boundFleet(ns, "node-f", n)
		By("a volume made by hand, without any tars label, for a directory below the sixth one's")
		kept := volumes[5]
		byHand(ns+"-by-hand-f", kept.Spec.Local.Path+"/shared", "host-f", corev1.VolumePending)
		lists.Store(0)
		keptDir.Store(new(dirOn("node-f", ns, "v5")))

		releaseFleet(claims, volumes)
		for i, pv := range volumes {
			if pv == kept {
				continue
			}
			Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
			Expect(dirOn("node-f", ns, fmt.Sprintf("v%d", i))).NotTo(BeADirectory())
			Eventually(pvEventReasons(pv.Name), timeout, interval).Should(ContainElement("CleanedUp"))
		}
		By(fmt.Sprintf("listing every volume %d times for %d cleanups", lists.Load(), n-1))
		Expect(lists.Load()).To(BeNumerically(">=", 1), "each cleanup checks every volume of the cluster")
		// One list per volume before; two per batch (before and after its moves), and the releases
		// may reach the agent in two or three batches.
		Expect(lists.Load()).To(BeNumerically("<=", (n-1)*2/3), "two lists serve the volumes released together")

		By("keeping the one whose directory the volume made by hand uses, saying why")
		Eventually(eventNotes("PersistentVolume", kept.Name), timeout, interval).Should(
			ContainElement(ContainSubstring("uses the same directory, or one above or below it")))
		expectKept(kept.Name, filepath.Join(dirOn("node-f", ns, "v5"), "sentinel"))
		Expect(keptMoved.Load()).To(BeZero(), "a directory another volume uses is never moved")
	})

	It("keeps the directory of a released volume that a volume made by hand comes to use after its checks, "+
		"in a batch", func() {
		const n = 4
		// The agent reads the volume, checks its claim, then reads the volume again before it moves its
		// directory: read is how far along that it is.
		var read atomic.Int32
		var raced atomic.Bool
		var target atomic.Pointer[corev1.PersistentVolume]
		// listedAside counts the lists of every volume the agent read while the directory was not at
		// its path: the list after the move, which must come once, and only once.
		var listedAside atomic.Int32
		agentOnNewNode("node-g", "host-g", agentOptions{disk: &roomyDisk, orphanScan: time.Hour,
			seen: func(req *http.Request) {
				defer GinkgoRecover()
				pv := target.Load()
				q := req.URL.Query()
				if pv == nil || req.Method != http.MethodGet || q.Get("watch") != "" {
					return
				}
				if _, err := os.Stat(dirOn("node-g", ns, "v2")); isVolumeList(req) && err != nil {
					listedAside.Add(1)
				}
				switch req.URL.Path {
				case "/api/v1/persistentvolumes/" + pv.Name:
					if !read.CompareAndSwap(0, 1) && read.CompareAndSwap(2, 3) {
						raced.Store(true)
						By("an administrator making a volume by hand for a directory below it, after the agent checked its claim")
						byHand(ns+"-by-hand-g", pv.Spec.Local.Path+"/shared", "host-g", corev1.VolumePending)
					}
				case "/api/v1/namespaces/" + ns + "/persistentvolumeclaims/" + pv.Spec.ClaimRef.Name:
					read.CompareAndSwap(1, 2)
				}
			}})
		claims, volumes := boundFleet(ns, "node-g", n)
		kept := volumes[2]
		target.Store(kept)

		releaseFleet(claims, volumes)
		for i, pv := range volumes {
			if pv != kept {
				Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
				Expect(dirOn("node-g", ns, fmt.Sprintf("v%d", i))).NotTo(BeADirectory())
			}
		}
		Expect(raced.Load()).To(BeTrue())
		Eventually(eventNotes("PersistentVolume", kept.Name), timeout, interval).Should(
			ContainElement(ContainSubstring("uses the same directory, or one above or below it")))
		expectKept(kept.Name, filepath.Join(dirOn("node-g", ns, "v2"), "sentinel"))
		By("listing every volume once after its directory moved aside, and never moving it again")
		Expect(listedAside.Load()).To(Equal(int32(1)))
		Consistently(listedAside.Load, 2*gcGrace, interval).Should(Equal(int32(1)))
		entries, err := os.ReadDir(filepath.Dir(dirOn("node-g", ns, "v2")))
		Expect(err).NotTo(HaveOccurred())
		Expect(entries).To(ConsistOf(HaveField("Name()", "v2")), "nothing left aside")
	})

	It("keeps a released volume whose directory is missing until it is back; "+
		"finishes a cleanup a restart cut short after the move aside", func() {
		pvc, pv, sentinel := boundWithData(ns, "node-a")
		dir := dirOn("node-a", ns, "remote-log-dir")
		By("the data disk not mounted, then the claim deleted: its volume is released")
		Expect(os.Rename(dir, dir+".unmounted")).To(Succeed())
		release(pvc, pv)
		Eventually(eventNotes("PersistentVolume", pv.Name), timeout, interval).Should(
			ContainElement(ContainSubstring("its directory is missing (a data disk not mounted?)")))
		Consistently(pvExists(pv.Name), 2*gcGrace, interval).Should(BeTrue())

		By("the disk mounted again: the cleanup the reclaim policy asks for goes ahead")
		Expect(os.Rename(dir+".unmounted", dir)).To(Succeed())
		Eventually(pvGone(pv.Name), 2*timeout, interval).Should(BeTrue())
		Expect(sentinel).NotTo(BeAnExistingFile())
		Expect(dir).NotTo(BeADirectory())

		By("a cleanup cut short once it moved the directory aside")
		pvc, pv, sentinel = boundWithData(ns, "node-a")
		deleteClaim(pvc)
		Expect(os.Rename(dir, dir+".deleting-"+string(pv.UID))).To(Succeed())
		setPhase(pv.Name, corev1.VolumeReleased)
		Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
		Eventually(func() string { return dir + ".deleting-" + string(pv.UID) }, timeout, interval).ShouldNot(BeADirectory())
		Expect(sentinel).NotTo(BeAnExistingFile())

		By("a cleanup cut short once it moved the directory aside, then a volume made by hand for that directory")
		pvc, pv, sentinel = boundWithData(ns, "node-a")
		deleteClaim(pvc)
		Expect(os.Rename(dir, dir+".deleting-"+string(pv.UID))).To(Succeed())
		byHand(ns+"-by-hand-a", pv.Spec.Local.Path, "host-a", corev1.VolumeAvailable)
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: ns + "-by-hand-a"}}))).To(Succeed())
		})
		setPhase(pv.Name, corev1.VolumeReleased)
		Eventually(eventNotes("PersistentVolume", pv.Name), timeout, interval).Should(
			ContainElement(ContainSubstring("uses the same directory, or one above or below it")))
		By("moving the directory back for the volume that uses it, and keeping the released one")
		Eventually(sentinel, timeout, interval).Should(BeAnExistingFile())
		Expect(dir + ".deleting-" + string(pv.UID)).NotTo(BeADirectory())
		Consistently(pvExists(pv.Name), gcGrace, interval).Should(BeTrue())

		By("the same, with the path made anew meanwhile: the data stays aside, and the refusal says where")
		claims, volumes := boundFleet(ns, "node-a", 1)
		v0 := dirOn("node-a", ns, "v0")
		aside := v0 + ".deleting-" + string(volumes[0].UID)
		deleteClaim(claims[0])
		Expect(os.Rename(v0, aside)).To(Succeed())
		Expect(os.Mkdir(v0, 0o755)).To(Succeed())
		byHand(ns+"-by-hand-v0", volumes[0].Spec.Local.Path, "host-a", corev1.VolumeAvailable)
		DeferCleanup(func() {
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: ns + "-by-hand-v0"}}))).To(Succeed())
		})
		setPhase(volumes[0].Name, corev1.VolumeReleased)
		Eventually(eventNotes("PersistentVolume", volumes[0].Name), timeout, interval).Should(ContainElement(
			ContainSubstring("a cleanup cut short left its data in " + volumes[0].Spec.Local.Path + ".deleting-")))
		Expect(filepath.Join(aside, "sentinel")).To(BeAnExistingFile())
		Expect(v0).To(BeADirectory())
		Expect(pvExists(volumes[0].Name)()).To(BeTrue())
	})

	It("hands back a claim of the group that waits here for a released volume once its cleanup is refused", func() {
		var target atomic.Pointer[corev1.PersistentVolume]
		var paused, read atomic.Bool
		var waiting atomic.Pointer[corev1.PersistentVolumeClaim]
		agentOnNewNode("node-h", "host-h", agentOptions{
			disk: &roomyDisk, orphanScan: time.Hour, funcs: &interceptor.Funcs{Get: readingClaim(ns, &read)},
			seen: func(req *http.Request) {
				defer GinkgoRecover()
				pv := target.Load()
				if pv == nil || req.Method != http.MethodGet || req.URL.Query().Get("watch") != "" ||
					req.URL.Path != "/api/v1/persistentvolumes/"+pv.Name || !paused.CompareAndSwap(false, true) {
					return
				}
				By("a new claim of the group scheduled here while the cleanup reads the volume afresh")
				waiting.Store(scheduledMeanwhile(ns, "node-h", &read))
			},
		})
		pvc, pv, sentinel := boundWithData(ns, "node-h")
		dir := dirOn("node-h", ns, "remote-log-dir")
		By("the data disk not mounted, then the claim deleted: its volume is released")
		Expect(os.Rename(dir, dir+".unmounted")).To(Succeed())
		deleteClaim(pvc)
		target.Store(pv)
		setPhase(pv.Name, corev1.VolumeReleased)
		Eventually(waiting.Load, timeout, interval).ShouldNot(BeNil())
		fresh := waiting.Load()
		Eventually(claimAnnotation(fresh, tarsv1beta1.AnnotationProvisioningRefused), timeout, interval).Should(
			ContainSubstring("its cleanup was refused: its directory is missing"))
		Expect(selectedNode(fresh)()).To(BeEmpty())
		Expect(pvExists(pv.Name)()).To(BeTrue())
		Expect(os.ReadFile(filepath.Join(dir+".unmounted", filepath.Base(sentinel)))).To(Equal([]byte("precious")))
	})

	It("hands back a claim of the group that waits here for a released volume whose cleanup keeps failing", func() {
		fresh, pv, sentinel := cleanupFailing(ns, "node-i", "host-i", true)
		Eventually(claimAnnotation(fresh, tarsv1beta1.AnnotationProvisioningRefused), timeout, interval).Should(And(
			ContainSubstring("its cleanup failed: "), ContainSubstring("denied by a policy")))
		Expect(selectedNode(fresh)()).To(BeEmpty())
		Expect(pvExists(pv.Name)()).To(BeTrue())
		Eventually(func() ([]byte, error) { return os.ReadFile(sentinel) }, timeout, interval).Should(
			Equal([]byte("precious")), "the directory moved back at its path")
		Eventually(eventNotes("PersistentVolume", pv.Name, "CleanupFailed"), timeout, interval).Should(ContainElement(
			And(ContainSubstring("cannot delete volume "+pv.Name), ContainSubstring("denied by a policy"))))
	})

	It("reports a cleanup's failed check and its failed delete after it as two events", func() {
		var hideClaim atomic.Bool
		var released atomic.Pointer[corev1.PersistentVolume]
		agentOnNewNode("node-m", "host-m", agentOptions{disk: &roomyDisk, orphanScan: time.Hour,
			funcs: &interceptor.Funcs{
				Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
					if pv, ok := obj.(*corev1.PersistentVolume); ok && strings.HasPrefix(pv.Name, ns+"-") {
						return apierrors.NewForbidden(corev1.Resource("persistentvolumes"), pv.Name,
							errors.New("denied by a policy"))
					}
					return c.Delete(ctx, obj, opts...)
				},
			},
			answer: func(req *http.Request) *http.Response {
				defer GinkgoRecover()
				pv := released.Load()
				if pv == nil || !hideClaim.Load() || req.Method != http.MethodGet ||
					req.URL.Path != "/api/v1/namespaces/"+ns+"/persistentvolumeclaims/"+pv.Spec.ClaimRef.Name {
					return nil
				}
				// The cleanup's reads of its claim, not those while the volume is bound.
				if fresh, err := getPV(pv.Name)(); err != nil || fresh.Status.Phase != corev1.VolumeReleased {
					return nil
				}
				return forbidden(req, "claims hidden from the agent by the test")
			}})
		pvc, pv, sentinel := boundWithData(ns, "node-m")
		released.Store(pv)
		hideClaim.Store(true)
		release(pvc, pv)
		notes := eventNotes("PersistentVolume", pv.Name, "CleanupFailed")
		Eventually(notes, timeout, interval).Should(ContainElement(
			And(ContainSubstring("cannot check yet"), ContainSubstring("claims hidden from the agent by the test"))))
		By("the claim readable again: the check passes, and the delete fails")
		hideClaim.Store(false)
		Eventually(notes, timeout, interval).Should(ContainElement(
			And(ContainSubstring("cannot delete volume "+pv.Name), ContainSubstring("denied by a policy"))))
		Expect(notes()).To(ContainElement(ContainSubstring("cannot check yet")), "the first event kept")
		Expect(pvExists(pv.Name)()).To(BeTrue())
		Eventually(func() ([]byte, error) { return os.ReadFile(sentinel) }, timeout, interval).Should(
			Equal([]byte("precious")), "the directory moved back at its path")
	})

	for i, when := range []string{"before", "after"} {
		nth := int32(i + 1) // the cleanup's first list is before the move, its second after
		It(fmt.Sprintf("reports a cleanup that cannot list the volumes that may use its directory %s moving it aside",
			when), func() {
			node := fmt.Sprintf("node-list-%d", nth)
			var lists atomic.Int32
			var released atomic.Pointer[corev1.PersistentVolume]
			agentOnNewNode(node, "host-"+node, agentOptions{disk: &roomyDisk, orphanScan: time.Hour,
				answer: func(req *http.Request) *http.Response {
					defer GinkgoRecover()
					pv := released.Load()
					if pv == nil || !isVolumeList(req) {
						return nil
					}
					if fresh, err := getPV(pv.Name)(); err != nil || fresh.Status.Phase != corev1.VolumeReleased ||
						lists.Add(1) != nth {
						return nil
					}
					return forbidden(req, "volumes hidden from the agent by the test")
				}})
			pvc, pv, _ := boundWithData(ns, node)
			released.Store(pv)
			release(pvc, pv)
			Eventually(eventNotes("PersistentVolume", pv.Name, "CleanupFailed"), timeout, interval).Should(
				ContainElement(And(ContainSubstring("cannot check yet"),
					ContainSubstring("volumes hidden from the agent by the test"))))
			By("the failure passing: the cleanup done")
			Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
			Eventually(pvEventReasons(pv.Name), timeout, interval).Should(ContainElement("CleanedUp"))
		})
	}

	It("hands back a claim of the group that waits here for a released volume whose cleanup cannot read its claim",
		func() {
			fresh, pv, sentinel := claimReadFailing(ns, "node-k", "host-k", true)
			Eventually(claimAnnotation(fresh, tarsv1beta1.AnnotationProvisioningRefused), timeout, interval).Should(And(
				ContainSubstring("its cleanup failed: "), ContainSubstring("claims hidden from the agent by the test")))
			Expect(selectedNode(fresh)()).To(BeEmpty())
			Eventually(pvEventReasons(pv.Name), timeout, interval).Should(ContainElement("CleanupFailed"))
			Expect(pvExists(pv.Name)()).To(BeTrue())
			Expect(os.ReadFile(sentinel)).To(Equal([]byte("precious")))
		})

	It("keeps a claim of the group waiting here through a failure to read the released claim that passes", func() {
		fresh, pv, _ := claimReadFailing(ns, "node-l", "host-l", false)
		Eventually(claimOfVolumeAfter(pv), timeout, interval).Should(Equal(fresh.UID))
		Expect(claimAnnotation(fresh, tarsv1beta1.AnnotationProvisioningRefused)()).To(BeEmpty())
		Expect(selectedNode(fresh)()).To(Equal("node-l"))
	})

	It("keeps a claim of the group waiting here through a cleanup failure that passes, and gives it the new volume",
		func() {
			fresh, pv, _ := cleanupFailing(ns, "node-j", "host-j", false)
			Eventually(claimOfVolumeAfter(pv), timeout, interval).Should(Equal(fresh.UID))
			Expect(claimAnnotation(fresh, tarsv1beta1.AnnotationProvisioningRefused)()).To(BeEmpty())
			Expect(selectedNode(fresh)()).To(Equal("node-j"))
		})

	It("deletes a released delay-bind volume whose directory is missing: it held nothing", func() {
		pvc := newClaim(ns, tarsv1beta1.DelayBindVolumeName, 0, seedOwnership)
		pv := provisioned(pvc, "node-a")
		bind(pvc, pv)
		deleteClaim(pvc)
		Expect(os.Remove(dirOn("node-a", ns, tarsv1beta1.DelayBindVolumeName))).To(Succeed())
		setPhase(pv.Name, corev1.VolumeReleased)
		Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
	})

	It("removes nothing on a status set to Released while its claim exists", func() {
		_, pv, sentinel := boundWithData(ns, "node-a")

		setPhase(pv.Name, corev1.VolumeReleased)
		Eventually(pvEventReasons(pv.Name), timeout, interval).Should(ContainElement("CleanupRefused"))
		expectKept(pv.Name, sentinel)
	})

	It("removes nothing of a released volume that a new claim asks for by name", func() {
		pvc, pv, sentinel := boundWithData(ns, "node-a")
		deleteClaim(pvc)
		By("an administrator making the claim anew to get the data back")
		again := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: pvc.Name, Namespace: ns, Labels: pvc.Labels},
			Spec:       *pvc.Spec.DeepCopy(),
		}
		again.Spec.VolumeName = pv.Name
		Expect(k8sClient.Create(ctx, again)).To(Succeed())
		setPhase(pv.Name, corev1.VolumeReleased)

		Eventually(pvEventReasons(pv.Name), timeout, interval).Should(ContainElement("CleanupRefused"))
		expectKept(pv.Name, sentinel)
	})

	It("removes nothing of a released volume whose path is not its group's own directory", func() {
		By("a volume made by hand, with a group's labels and name, pointing at the directory of the whole server")
		keep := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		bind(keep, provisioned(keep, "node-a"))
		sentinel := writeSentinel(dirOn("node-a", ns, "remote-log-dir"))
		a := agents["node-a"]
		cfg := Config{NodeName: "node-a", Hostname: a.hostname, HostRoot: hostRoot, StorageClassName: testStorage}
		gone := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone", UID: "0000-gone",
			Labels: map[string]string{
				tarsv1beta1.LabelServerApp: "tars", tarsv1beta1.LabelServerName: "tarslog", tarsv1beta1.LabelLocalVolume: "cache",
			}}}
		parent := cfg.Volume(gone, corev1.PersistentVolumeReclaimDelete)
		parent.Spec.Local.Path = hostRoot + "/" + ns + "/tars.tarslog"
		Expect(k8sClient.Create(ctx, parent)).To(Succeed())
		setPhase(parent.Name, corev1.VolumeReleased)

		Eventually(eventNotes("PersistentVolume", parent.Name), timeout, interval).Should(
			ContainElement(ContainSubstring("its path is not its group's directory")))
		expectKept(parent.Name, sentinel)
	})

	It("removes nothing of a released volume whose directory another volume uses", func() {
		pvc, pv, sentinel := boundWithData(ns, "node-a")
		By("a volume made by hand, without any tars label, for a directory below it")
		other := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: ns + "-by-hand"}}
		byHand(other.Name, pv.Spec.Local.Path+"/shared", "host-a", corev1.VolumePending)

		release(pvc, pv)
		Eventually(pvEventReasons(pv.Name), timeout, interval).Should(ContainElement("CleanupRefused"))
		expectKept(pv.Name, sentinel)

		By("handing a new claim of its group scheduled there back to the scheduler, saying why")
		next := newClaim(ns, "remote-log-dir", 1, seedOwnership)
		schedule(next, "node-a")
		Eventually(selectedNode(next), timeout, interval).Should(BeEmpty())
		Eventually(eventNotes("PersistentVolumeClaim", next.Name), timeout, interval).Should(
			ContainElement(ContainSubstring("cleanup was refused")))

		By("cleaning up once that volume is gone")
		Expect(k8sClient.Delete(ctx, other)).To(Succeed())
		Eventually(pvGone(other.Name), timeout, interval).Should(BeTrue())
		setPhase(pv.Name, corev1.VolumeReleased) // a change of the volume brings the agent back at once
		Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
		Expect(dirOn("node-a", ns, "remote-log-dir")).NotTo(BeADirectory())
	})

	It("never recreates the missing directory of a bound data volume empty, reports it, "+
		"and clears the report once it is back", func() {
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		pv := provisioned(pvc, "node-a")
		bind(pvc, pv)
		dir := dirOn("node-a", ns, "remote-log-dir")
		writeSentinel(dir)
		By("the data disk not mounted: the directory is not there")
		hidden := dir + ".unmounted"
		Expect(os.Rename(dir, hidden)).To(Succeed())

		Eventually(claimAnnotation(pvc, tarsv1beta1.AnnotationVolumeProblem), timeout, interval).Should(
			And(ContainSubstring(pv.Spec.Local.Path), ContainSubstring("node-a"), ContainSubstring("delete the claim")))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("VolumeDirectoryMissing"))
		Eventually(pvEventReasons(pv.Name), timeout, interval).Should(ContainElement("VolumeDirectoryMissing"))
		Consistently(func() string { return dir }, 3*resync, interval).ShouldNot(BeADirectory())

		By("making no new data volume on that node meanwhile: the disk may be missing")
		other := newClaim(ns, "cache", 0, seedOwnership)
		schedule(other, "node-a")
		Eventually(selectedNode(other), timeout, interval).Should(BeEmpty())
		Eventually(eventNotes("PersistentVolumeClaim", other.Name), timeout, interval).Should(
			ContainElement(ContainSubstring("a data disk not mounted?")))
		Expect(dirOn("node-a", ns, "cache")).NotTo(BeADirectory())

		By("the disk mounted again")
		Expect(os.Rename(hidden, dir)).To(Succeed())
		Eventually(claimAnnotation(pvc, tarsv1beta1.AnnotationVolumeProblem), timeout, interval).Should(BeEmpty())
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("VolumeDirectoryRestored"))
		Expect(os.ReadFile(filepath.Join(dir, "sentinel"))).To(Equal([]byte("precious")))
	})

	It("gives a replica a new, empty volume once the claim and the volume of its missing directory are deleted", func() {
		pvc, pv, _ := boundWithData(ns, "node-a")
		dir := dirOn("node-a", ns, "remote-log-dir")
		Expect(os.Rename(dir, dir+".lost")).To(Succeed())
		Eventually(claimAnnotation(pvc, tarsv1beta1.AnnotationVolumeProblem), timeout, interval).Should(
			ContainSubstring("delete the claim and the volume"))

		By("the administrator accepting the loss: the claim and the volume deleted, then a new claim for the replica")
		deleteClaim(pvc)
		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
		again := provisioned(newClaim(ns, "remote-log-dir", 0, seedOwnership), "node-a")
		Expect(again.UID).NotTo(Equal(pv.UID))
		entries, err := os.ReadDir(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect(entries).To(BeEmpty())
		Expect(filepath.Join(dir+".lost", "sentinel")).To(BeARegularFile(), "the lost data is never touched")
	})

	It("moves back the directory of a volume made available again after an interrupted cleanup moved it aside", func() {
		pvc, pv, sentinel := boundWithData(ns, "node-a")
		deleteClaim(pvc)
		dir := dirOn("node-a", ns, "remote-log-dir")
		Expect(os.Rename(dir, dir+".deleting-"+string(pv.UID))).To(Succeed())
		By("an administrator clearing the volume's claim to use it again")
		Eventually(func() error {
			got, err := getPV(pv.Name)()
			if err != nil {
				return err
			}
			got.Spec.ClaimRef = nil
			return k8sClient.Update(ctx, got)
		}, timeout, interval).Should(Succeed())
		setPhase(pv.Name, corev1.VolumeAvailable)
		Eventually(func() ([]byte, error) { return os.ReadFile(sentinel) },
			timeout, interval).Should(Equal([]byte("precious")))
		Eventually(func() (corev1.PersistentVolumeReclaimPolicy, error) {
			got, err := getPV(pv.Name)()
			if err != nil {
				return "", err
			}
			return got.Spec.PersistentVolumeReclaimPolicy, nil
		}, timeout, interval).Should(Equal(corev1.PersistentVolumeReclaimRetain))
	})

	It("moves back the directory of a bound volume that an interrupted cleanup moved aside", func() {
		pvc, pv, sentinel := boundWithData(ns, "node-a")
		dir := dirOn("node-a", ns, "remote-log-dir")
		Expect(os.Rename(dir, dir+".deleting-"+string(pv.UID))).To(Succeed())
		Eventually(func() ([]byte, error) { return os.ReadFile(sentinel) },
			timeout, interval).Should(Equal([]byte("precious")))
		Consistently(claimAnnotation(pvc, tarsv1beta1.AnnotationVolumeProblem), 2*resync, interval).Should(BeEmpty())
	})

	It("reports a missing directory even when the claim's ownership annotation is invalid", func() {
		pvc, _, _ := boundWithData(ns, "node-a")
		dir := dirOn("node-a", ns, "remote-log-dir")
		Expect(os.Rename(dir, dir+".unmounted")).To(Succeed())
		DeferCleanup(os.Rename, dir+".unmounted", dir) // the node's disk is in doubt until then
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		pvc.Annotations[tarsv1beta1.AnnotationLocalVolumeMode] = "8"
		Expect(k8sClient.Update(ctx, pvc)).To(Succeed())
		Eventually(claimAnnotation(pvc, tarsv1beta1.AnnotationVolumeProblem),
			timeout, interval).Should(ContainSubstring("is missing"))
		Expect(dir).NotTo(BeADirectory())
	})

	It("neither makes anew nor gives its ownership to the directory of a data volume "+
		"bound to a claim of another volume", func() {
		old, pv, _ := boundWithData(ns, "node-a")
		dir := dirOn("node-a", ns, "remote-log-dir")
		deleteClaim(old)
		By("a claim labelled delay-bind, bound by hand to that data volume")
		other := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "delay-bind-tars-tarslog-0", Namespace: ns,
			Labels: map[string]string{
				tarsv1beta1.LabelServerApp: "tars", tarsv1beta1.LabelServerName: "tarslog",
				tarsv1beta1.LabelLocalVolume: tarsv1beta1.DelayBindVolumeName,
			}}, Spec: *old.Spec.DeepCopy()}
		other.Spec.Selector = nil
		Expect(k8sClient.Create(ctx, other)).To(Succeed())
		Eventually(func() error {
			got, err := getPV(pv.Name)()
			if err != nil {
				return err
			}
			got.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: ns, Name: other.Name, UID: other.UID}
			return k8sClient.Update(ctx, got)
		}, timeout, interval).Should(Succeed())
		Expect(os.Rename(dir, dir+".unmounted")).To(Succeed())
		DeferCleanup(os.Rename, dir+".unmounted", dir) // the node's disk is in doubt until then
		got, err := getPV(pv.Name)()
		Expect(err).NotTo(HaveOccurred())
		bind(other, got)

		Eventually(eventNotes("PersistentVolumeClaim", other.Name), timeout, interval).Should(
			ContainElement(ContainSubstring("of another server or volume")))
		Consistently(func() string { return dir }, 3*resync, interval).ShouldNot(BeADirectory())
	})

	It("makes a delay-bind volume's missing directory anew: it holds no data", func() {
		tserverStatefulSet(ns)
		pvc := newClaim(ns, tarsv1beta1.DelayBindVolumeName, 0, nil)
		pv := provisioned(pvc, "node-c")
		bind(pvc, pv)
		dir := dirOn("node-c", ns, tarsv1beta1.DelayBindVolumeName)
		Expect(os.Remove(dir)).To(Succeed())
		Eventually(func() string { return dir }, timeout, interval).Should(BeADirectory())
		Expect(claimAnnotation(pvc, tarsv1beta1.AnnotationVolumeProblem)()).To(BeEmpty())
	})

	It("keeps data it finds in a claim's directory under reclaim policy Retain", func() {
		dir := dirOn("node-b", ns, "remote-log-dir")
		Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		sentinel := writeSentinel(dir)
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		pv := provisioned(pvc, "node-b")
		Expect(pv.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimRetain))
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("AdoptedExistingData"))
		bind(pvc, pv)

		By("so that deleting the claim leaves the data")
		release(pvc, pv)
		Consistently(pvExists(pv.Name), 2*time.Second, interval).Should(BeTrue())
		Expect(os.ReadFile(sentinel)).To(Equal([]byte("precious")))
	})

	It("keeps the directory of a claim that Kubernetes bound to a volume made beforehand", func() {
		pv := madeBeforehand("node-a", ns)
		pvc := newClaim(ns, "remote-log-dir", 0, map[string]string{
			tarsv1beta1.AnnotationLocalVolumeUID:  "1000",
			tarsv1beta1.AnnotationLocalVolumeGID:  "100",
			tarsv1beta1.AnnotationLocalVolumeMode: "711",
		})
		By("binding them as the scheduler and PV controller do, with no selected-node on the claim")
		Eventually(func() error {
			got, err := getPV(pv.Name)()
			if err != nil {
				return err
			}
			got.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: ns, Name: pvc.Name, UID: pvc.UID}
			return k8sClient.Update(ctx, got)
		}, timeout, interval).Should(Succeed())
		bound, err := getPV(pv.Name)()
		Expect(err).NotTo(HaveOccurred())
		bind(pvc, bound)

		dir := dirOn("node-a", ns, "remote-log-dir")
		Eventually(func() []any {
			uid, gid, mode, _ := statDir(dir)
			return []any{uid, gid, mode}
		}, timeout, interval).Should(Equal([]any{uint32(1000), uint32(100), os.FileMode(0o711)}))
		Expect(claimAnnotation(pvc, "volume.kubernetes.io/selected-node")()).To(BeEmpty())
		got := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), got)).To(Succeed())
		Expect(got.Labels).To(HaveKeyWithValue(tarsv1beta1.LabelSelectedNode, "node-a"),
			"the admission policy keeps the label the volume's agent gave")

		By("following uid/gid/mode edits")
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pvc), pvc)).To(Succeed())
		pvc.Annotations[tarsv1beta1.AnnotationLocalVolumeMode] = "755"
		Expect(k8sClient.Update(ctx, pvc)).To(Succeed())
		Eventually(func() os.FileMode {
			_, _, mode, _ := statDir(dir)
			return mode
		}, timeout, interval).Should(Equal(os.FileMode(0o755)))
	})

	It("gives a claim scheduled on its node the unused volume of its group made beforehand", func() {
		pv := madeBeforehand("node-a", ns)
		Expect(os.WriteFile(filepath.Join(dirOn("node-a", ns, "remote-log-dir"), "old.log"),
			[]byte("x"), 0o644)).To(Succeed())
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		schedule(pvc, "node-a")
		Eventually(func() types.UID {
			got, err := getPV(pv.Name)()
			if err != nil || got.Spec.ClaimRef == nil {
				return ""
			}
			return got.Spec.ClaimRef.UID
		}, timeout, interval).Should(Equal(pvc.UID))
		Expect(filepath.Join(dirOn("node-a", ns, "remote-log-dir"), "old.log")).To(BeARegularFile())
		By("keeping the data it found there under reclaim policy Retain")
		got, err := getPV(pv.Name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimRetain))
	})

	It("retains the data in the directory of an unbound volume made beforehand, even once it collects the volume", func() {
		pv := madeBeforehand("node-b", ns)
		sentinel := writeSentinel(dirOn("node-b", ns, "remote-log-dir"))
		Eventually(func() (corev1.PersistentVolumeReclaimPolicy, error) {
			got, err := getPV(pv.Name)()
			return got.Spec.PersistentVolumeReclaimPolicy, err
		}, timeout, interval).Should(Equal(corev1.PersistentVolumeReclaimRetain))
		// Events are sent in the background: the policy can be seen before its event.
		Eventually(pvEventReasons(pv.Name), timeout, interval).Should(ContainElement("RetainedExistingData"))
		Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue(), "collected after the grace period")
		Expect(os.ReadFile(sentinel)).To(Equal([]byte("precious")))
	})

	It("deletes unbound volumes made beforehand after the grace period once no claim waits, "+
		"never one that got bound", func() {
		onA, onB := madeBeforehand("node-a", ns), madeBeforehand("node-b", ns)
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		schedule(pvc, "node-a") // binds onA to it
		Eventually(func() bool {
			got, err := getPV(onA.Name)()
			return err == nil && got.Spec.ClaimRef != nil
		}, timeout, interval).Should(BeTrue())
		boundA, err := getPV(onA.Name)()
		Expect(err).NotTo(HaveOccurred())
		bind(pvc, boundA)

		Eventually(pvGone(onB.Name), timeout, interval).Should(BeTrue())
		Expect(dirOn("node-b", ns, "remote-log-dir")).NotTo(BeADirectory())
		Eventually(pvEventReasons(onB.Name), timeout, interval).Should(ContainElement("GarbageCollected"))
		Consistently(pvExists(onA.Name), gcGrace+time.Second, interval).Should(BeTrue())
		Expect(dirOn("node-a", ns, "remote-log-dir")).To(BeADirectory())
	})

	It("never deletes an unbound volume that gets bound between the agent's read and its delete", func() {
		var raced atomic.Bool
		claim := &corev1.ObjectReference{
			Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: "late", UID: "0000-late",
		}
		agentOnNewNode("node-d", "host-d", agentOptions{disk: &roomyDisk, orphanScan: orphanScan, funcs: &interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if pv, ok := obj.(*corev1.PersistentVolume); ok && strings.HasPrefix(pv.Name, ns+"-") &&
					raced.CompareAndSwap(false, true) {
					By("binding the volume as the scheduler would, after the agent read it and before its delete")
					got, err := getPV(pv.Name)()
					Expect(err).NotTo(HaveOccurred())
					got.Spec.ClaimRef = claim
					Expect(k8sClient.Update(ctx, got)).To(Succeed())
				}
				return c.Delete(ctx, obj, opts...)
			},
		}})
		pv := madeBeforehand("node-d", ns)
		Eventually(raced.Load, timeout, interval).Should(BeTrue())
		Consistently(func() (*metav1.Time, error) {
			got, err := getPV(pv.Name)()
			return got.DeletionTimestamp, err
		}, gcGrace+time.Second, interval).Should(BeNil())
		got, err := getPV(pv.Name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Spec.ClaimRef).To(Equal(claim))
		Expect(dirOn("node-d", ns, "remote-log-dir")).To(BeADirectory())
	})

	It("gives a released volume its directory back when the volume changes before its delete", func() {
		var raced atomic.Bool
		agentOnNewNode("node-e", "host-e", agentOptions{disk: &roomyDisk, orphanScan: orphanScan, funcs: &interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if pv, ok := obj.(*corev1.PersistentVolume); ok && strings.HasPrefix(pv.Name, ns+"-") &&
					raced.CompareAndSwap(false, true) {
					By("an administrator clearing the volume's claim to use it again, after the agent checked it, before its delete")
					Eventually(func() error {
						got, err := getPV(pv.Name)()
						if err != nil {
							return err
						}
						got.Spec.ClaimRef = nil
						return k8sClient.Update(ctx, got)
					}, timeout, interval).Should(Succeed())
				}
				return c.Delete(ctx, obj, opts...)
			},
		}})
		pvc, pv, sentinel := boundWithData(ns, "node-e")
		release(pvc, pv)
		Eventually(raced.Load, timeout, interval).Should(BeTrue())
		Eventually(func() ([]byte, error) { return os.ReadFile(sentinel) },
			timeout, interval).Should(Equal([]byte("precious")))
		entries, err := os.ReadDir(filepath.Dir(dirOn("node-e", ns, "remote-log-dir")))
		Expect(err).NotTo(HaveOccurred())
		Expect(entries).To(HaveLen(1), "nothing left aside")
	})

	It("keeps an unbound volume made beforehand while a claim of its group waits", func() {
		pv := madeBeforehand("node-b", ns)
		newClaim(ns, "remote-log-dir", 0, seedOwnership)
		Consistently(pvExists(pv.Name), gcGrace+2*time.Second, interval).Should(BeTrue())
	})

	It("hands a claim back when its volume's name is taken by something else, and leaves that volume alone", func() {
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
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		schedule(pvc, "node-a")

		Eventually(selectedNode(pvc), timeout, interval).Should(BeEmpty())
		Eventually(eventReasons(ns), timeout, interval).Should(ContainElement("ProvisioningFailed"))
		got, err := getPV(name)()
		Expect(err).NotTo(HaveOccurred())
		Expect(got.ResourceVersion).To(Equal(squatter.ResourceVersion))
		By("while another node provisions")
		provisioned(pvc, "node-b")
	})

	It("makes no new volume on a node whose disk is nearly full for a pod that has nothing there, says so on "+
		"the node and the claim, leaves the volumes there alone, and makes them again once there is room", func() {
		a := agents["node-a"]
		DeferCleanup(func() { agents["node-a"].disk.Store(&roomyDisk) })
		node := &corev1.Node{}
		diskLabel := func() (string, error) {
			if err := k8sClient.Get(ctx, client.ObjectKey{Name: "node-a"}, node); err != nil {
				return "", err
			}
			return node.Labels[tarsv1beta1.LabelDiskFull], nil
		}
		kept := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		keptPV := provisioned(kept, "node-a")
		bind(kept, keptPV)

		By("free space below the floor (10%): the node is labelled, with one Warning on it")
		full := roomyDisk
		full.BytesAvailable = 5 << 30
		a.disk.Store(&full)
		Eventually(diskLabel, timeout, interval).Should(Equal(tarsv1beta1.DiskFullSpace))
		Eventually(eventNotes("Node", "node-a", "DiskFull"), timeout, interval).Should(ContainElement(
			ContainSubstring("no new volume is made on this node")))
		Consistently(func() []eventsv1.Event { return eventsAbout("Node", "node-a") }, time.Second, interval).Should(
			ContainElement(And(HaveField("Reason", "DiskFull"), HaveField("Series", BeNil()))), "one event, no series")

		By("a claim of a pod with nothing on the node is handed back, saying why on the claim; no volume is made")
		refused := newClaim(ns, "data", 1, seedOwnership)
		schedule(refused, "node-a")
		Eventually(selectedNode(refused), timeout, interval).Should(BeEmpty())
		got := &corev1.PersistentVolumeClaim{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(refused), got)).To(Succeed())
		Expect(got.Annotations[tarsv1beta1.AnnotationProvisioningRefused]).To(And(
			HavePrefix("node node-a: the node's disk is full"), ContainSubstring("--min-free-space 10%")))
		Expect(eventNotes("PersistentVolumeClaim", refused.Name, "ProvisioningFailed")()).To(ContainElement(
			ContainSubstring("the node's disk is full")))
		Consistently(pvExists(volumeOn("node-a", ns, "data")), 300*time.Millisecond, interval).Should(BeFalse())

		By("the volume made before is untouched, its directory still kept")
		Expect(os.Chmod(filepath.Join(a.dir, ns, "tars.tarslog", "remote-log-dir"), 0o700)).To(Succeed())
		Eventually(func() (os.FileMode, error) {
			fi, err := os.Stat(filepath.Join(a.dir, ns, "tars.tarslog", "remote-log-dir"))
			if err != nil {
				return 0, err
			}
			return fi.Mode().Perm(), nil
		}, timeout, interval).Should(Equal(os.FileMode(0o755)))
		Expect(getPV(keptPV.Name)()).To(HaveField("Status.Phase", corev1.VolumeBound))

		By("a mount added to the replica whose volume is here: refusing would only keep it down, so it is made")
		added := newClaim(ns, "logs", 0, seedOwnership)
		provisioned(added, "node-a")

		By("a pod whose data is here gets that volume and a new one beside it")
		Expect(os.MkdirAll(filepath.Join(a.dir, ns, "tars.tarslog", "cache"), 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(a.dir, ns, "tars.tarslog", "cache", "kept"), []byte("data"), 0o644)).To(Succeed())
		back, beside := newClaim(ns, "cache", 2, seedOwnership), newClaim(ns, "scratch", 2, seedOwnership)
		schedule(beside, "node-a")
		provisioned(back, "node-a")
		Eventually(pvExists(volumeOn("node-a", ns, "scratch")), timeout, interval).Should(BeTrue())

		By("a delay-bind volume, an empty directory, is made, but not for a pod whose data could not follow")
		// (Of a server with no volume on the node, whose pod the node's cache alone would judge.)
		pinning := newServerClaim(ns, "pinned", tarsv1beta1.DelayBindVolumeName, 0, nil)
		newServerClaim(ns, "pinned", "journal", 0, seedOwnership)
		schedule(pinning, "node-a")
		Eventually(selectedNode(pinning), timeout, interval).Should(BeEmpty())
		Expect(eventNotes("PersistentVolumeClaim", pinning.Name, "ProvisioningFailed")()).To(ContainElement(
			ContainSubstring("claim journal-tars-pinned-0 of the same pod tars-pinned-0 cannot have its volume")))
		provisioned(newClaim(ns, tarsv1beta1.DelayBindVolumeName, 3, nil), "node-a")

		By("out of inodes instead: the label says so")
		noInodes := roomyDisk
		noInodes.InodesFree = 999
		a.disk.Store(&noInodes)
		Eventually(diskLabel, timeout, interval).Should(Equal(tarsv1beta1.DiskFullInodes))
		both := noInodes
		both.BytesAvailable = full.BytesAvailable
		a.disk.Store(&both)
		Eventually(diskLabel, timeout, interval).Should(Equal(tarsv1beta1.DiskFullSpaceAndInodes))

		By("the filesystem unreadable: the mark stays, and nothing is refused for it")
		a.disk.Store(nil)
		unread := newClaim(ns, "spool", 4, seedOwnership)
		provisioned(unread, "node-a")
		Consistently(diskLabel, time.Second, interval).Should(Equal(tarsv1beta1.DiskFullSpaceAndInodes))

		By("just above the floor: still full (the mark goes with a margin, not to flap), across a restart")
		nearly := roomyDisk
		nearly.BytesAvailable = 11 << 30
		a.disk.Store(&nearly)
		Eventually(diskLabel, timeout, interval).Should(Equal(tarsv1beta1.DiskFullSpace))
		a.stop()
		<-a.done
		startAgentOnDisk(a.node, a.hostname, a.dir, &nearly)
		a = agents["node-a"]
		Consistently(diskLabel, time.Second, interval).Should(Equal(tarsv1beta1.DiskFullSpace))

		By("room again: the label goes, with a Normal event, and the claim gets its volume, the refusal cleared")
		a.disk.Store(&roomyDisk)
		Eventually(func() (bool, error) {
			_, err := diskLabel()
			_, labelled := node.Labels[tarsv1beta1.LabelDiskFull]
			return labelled, err
		}, timeout, interval).Should(BeFalse())
		Eventually(eventNotes("Node", "node-a", "DiskSpaceAvailable"), timeout, interval).ShouldNot(BeEmpty())
		bind(refused, provisioned(refused, "node-a"))
		Eventually(func() (map[string]string, error) {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(refused), got)
			return got.Annotations, err
		}, timeout, interval).ShouldNot(HaveKey(tarsv1beta1.AnnotationProvisioningRefused))
	})

	It("converges after a restart: an agent that died after making a directory adopts it", func() {
		a := agents["node-b"]
		a.stop()
		<-a.done
		dir := filepath.Join(a.dir, ns, "tars.tarslog", "remote-log-dir")
		Expect(os.MkdirAll(dir, 0o700)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "kept"), []byte("data"), 0o600)).To(Succeed())
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		schedule(pvc, "node-b")
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
		first := provisioned(old, "node-a")
		bind(old, first)

		release(old, first)
		fresh := newClaim(ns, "remote-log-dir", 1, seedOwnership)
		schedule(fresh, "node-a")
		Eventually(claimOfVolumeAfter(first), timeout, interval).Should(Equal(fresh.UID))
	})

	It("provisions nothing under a StorageClass of another provisioner, and resumes when it is the operator's", func() {
		useProvisioner(tarsv1beta1.NoProvisioner)
		DeferCleanup(useProvisioner, tarsv1beta1.Provisioner)
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		Expect(pvc.Annotations).NotTo(HaveKey("volume.kubernetes.io/storage-provisioner"),
			"a claim of a class that provisions nothing is not said to be provisioned")
		schedule(pvc, "node-a")
		Consistently(pvExists(volumeOn("node-a", ns, "remote-log-dir")), time.Second, interval).Should(BeFalse())

		useProvisioner(tarsv1beta1.Provisioner)
		Eventually(pvExists(volumeOn("node-a", ns, "remote-log-dir")), timeout, interval).Should(BeTrue())
	})
})

// hostDir is the host path of a volume directory, as volumes and the agent's reports name it.
func hostDir(ns, volume string) string {
	return hostRoot + "/" + ns + "/tars.tarslog/" + volume
}

// orphanSeries are the series of the metric tserver_agent_orphaned_directory, value by path.
func orphanSeries() map[string]float64 {
	families, err := ctrlmetrics.Registry.Gather()
	Expect(err).NotTo(HaveOccurred())
	series := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "tserver_agent_orphaned_directory" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "path" {
					series[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return series
}

// volumeUsage reads the agents' usage metrics of claim pvc: bytes and inodes, by node; a claim
// without figures is missing.
func volumeUsage(pvc *corev1.PersistentVolumeClaim) func() map[string][2]float64 {
	return func() map[string][2]float64 {
		families, err := ctrlmetrics.Registry.Gather()
		Expect(err).NotTo(HaveOccurred())
		usage := map[string][2]float64{}
		for _, f := range families {
			i := slices.Index([]string{"tserver_agent_volume_used_bytes", "tserver_agent_volume_used_inodes"}, f.GetName())
			if i < 0 {
				continue
			}
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["namespace"] == pvc.Namespace && labels["persistentvolumeclaim"] == pvc.Name {
					u := usage[labels["node"]]
					u[i] = m.GetGauge().GetValue()
					usage[labels["node"]] = u
				}
			}
		}
		return usage
	}
}

// orphanBytes reads what an orphaned directory holds, by host path, from the agents' metrics.
func orphanBytes(hostPath string) func() float64 {
	return func() float64 {
		families, err := ctrlmetrics.Registry.Gather()
		Expect(err).NotTo(HaveOccurred())
		for _, f := range families {
			if f.GetName() != "tserver_agent_orphaned_directory_bytes" {
				continue
			}
			for _, m := range f.GetMetric() {
				if m.GetLabel()[0].GetValue() == hostPath {
					return m.GetGauge().GetValue()
				}
			}
		}
		return -1
	}
}

// orphanReports lists the notes of the OrphanedDirectory events about node that name path.
func orphanReports(node, path string) func() []string {
	return func() []string {
		return slices.DeleteFunc(eventNotes("Node", node, "OrphanedDirectory")(), func(note string) bool {
			return !strings.Contains(note, path)
		})
	}
}

// byHand creates a volume as an administrator would, without any tars label, mounting the host
// directory p (a local volume pinned to hostname, or, without one, a hostPath volume that may be
// anywhere), and gives it phase.
func byHand(name, p, hostname string, phase corev1.PersistentVolumePhase) {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              "manual",
		},
	}
	if hostname == "" {
		pv.Spec.HostPath = &corev1.HostPathVolumeSource{Path: p}
	} else {
		pv.Spec.Local = &corev1.LocalVolumeSource{Path: p}
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname},
			}}}},
		}}
	}
	Expect(k8sClient.Create(ctx, pv)).To(Succeed())
	if phase != corev1.VolumePending {
		setPhase(name, phase)
	}
}

var _ = Describe("The node agent's measure of volumes", func() {
	It("exports what each bound volume's directory holds, as du counts it, and drops a volume no longer bound", func() {
		ns := newNamespace()
		pvc, pv, _ := boundWithData(ns, "node-a")
		dir := dirOn("node-a", ns, "remote-log-dir")
		for i := range 30 {
			Expect(os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), make([]byte, 40_000), 0o644)).To(Succeed())
		}
		Expect(os.Symlink("/", filepath.Join(dir, "root"))).To(Succeed()) // counted, never followed
		du := func(args ...string) float64 {
			out, err := exec.Command("du", append(args, dir)...).Output()
			Expect(err).NotTo(HaveOccurred())
			n, err := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
			Expect(err).NotTo(HaveOccurred())
			return n
		}
		want := [2]float64{du("-sxB1"), du("-sx", "--inodes")}
		Expect(want[1]).To(BeNumerically("==", 33)) // the directory, the sentinel, 30 files, the link
		Eventually(volumeUsage(pvc), timeout, interval).Should(Equal(map[string][2]float64{"node-a": want}))

		By("and none once the volume is released and gone")
		release(pvc, pv)
		Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
		Eventually(volumeUsage(pvc), timeout, interval).Should(BeEmpty())
	})
})

var _ = Describe("The node agent's report of orphaned directories", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("reports an orphaned directory once, and leaves it and its data as they are, "+
		"through scans and provisioning beside it", func() {
		By("the directory of a volume deleted while its node was away")
		dir := dirOn("node-b", ns, "remote-log-dir")
		Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		sentinel := writeSentinel(dir)
		Expect(os.Chown(dir, 4321, 4321)).To(Succeed())
		Expect(os.Chmod(dir, 0o750)).To(Succeed())
		orphan := hostDir(ns, "remote-log-dir")

		Eventually(orphanReports("node-b", orphan), timeout, interval).Should(ConsistOf(
			And(HavePrefix("Node node-b holds"), ContainSubstring("no PersistentVolume uses"))))
		Expect(orphanSeries()).To(HaveKeyWithValue(orphan, 1.0))
		By("sizing it as du does")
		out, err := exec.Command("du", "-sxB1", dir).Output()
		Expect(err).NotTo(HaveOccurred())
		size, err := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
		Expect(err).NotTo(HaveOccurred())
		Eventually(orphanBytes(orphan), timeout, interval).Should(Equal(size))

		By("reporting it once, whatever the number of scans")
		Consistently(orphanReports("node-b", orphan), 4*orphanScan, interval).Should(HaveLen(1))

		By("provisioning another volume of the server on the node, beside it")
		pvc := newClaim(ns, "cache", 0, seedOwnership)
		bind(pvc, provisioned(pvc, "node-b"))
		Consistently(orphanSeries, 3*orphanScan, interval).Should(And(
			HaveKeyWithValue(orphan, 1.0), Not(HaveKey(hostDir(ns, "cache")))))
		Expect(orphanReports("node-b", orphan)()).To(HaveLen(1))
		Expect(orphanReports("node-b", hostDir(ns, "cache"))()).To(BeEmpty())

		uid, gid, mode, err := statDir(dir)
		Expect(err).NotTo(HaveOccurred())
		Expect([]any{uid, gid, mode}).To(Equal([]any{uint32(4321), uint32(4321), os.FileMode(0o750)}))
		Expect(os.ReadFile(sentinel)).To(Equal([]byte("precious")))
	})

	It("counts as used a directory that any volume that may be on its node uses, in any phase, "+
		"made by hand or over a parent", func() {
		used := map[string]string{
			"released": "", "pending": "", "below": "", "under-parent-1": "", "under-parent-2": "",
		}
		for volume := range used {
			dir := dirOn("node-b", ns, volume)
			if strings.HasPrefix(volume, "under-parent") {
				dir = filepath.Join(agents["node-b"].dir, ns, "hand.made", volume)
				used[volume] = hostRoot + "/" + ns + "/hand.made/" + volume
			} else {
				used[volume] = hostDir(ns, volume)
			}
			Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		}
		byHand(ns+"-released", hostDir(ns, "released"), "host-b", corev1.VolumeReleased)
		byHand(ns+"-pending", hostDir(ns, "pending"), "host-b", corev1.VolumePending)
		byHand(ns+"-below", hostDir(ns, "below")+"/sub", "host-b", corev1.VolumeFailed)
		byHand(ns+"-parent", hostRoot+"/"+ns+"/hand.made", "", corev1.VolumeAvailable)

		By("while reporting, in the same scans, a directory no volume uses and one only another node's volume uses")
		for _, volume := range []string{"orphan", "elsewhere"} {
			Expect(os.MkdirAll(dirOn("node-b", ns, volume), 0o755)).To(Succeed())
		}
		byHand(ns+"-elsewhere", hostDir(ns, "elsewhere"), "host-a", corev1.VolumeBound)
		Eventually(orphanSeries, timeout, interval).Should(And(
			HaveKeyWithValue(hostDir(ns, "orphan"), 1.0), HaveKeyWithValue(hostDir(ns, "elsewhere"), 1.0)))
		Consistently(orphanSeries, 2*orphanScan, interval).ShouldNot(Or(
			HaveKey(used["released"]), HaveKey(used["pending"]), HaveKey(used["below"]),
			HaveKey(used["under-parent-1"]), HaveKey(used["under-parent-2"])))
		for volume, p := range used {
			Expect(orphanReports("node-b", p)()).To(BeEmpty(), volume)
		}
	})

	It("drops an orphan out of the metric when a new volume of its group adopts it, "+
		"and reports it when it is orphaned again", func() {
		dir := dirOn("node-a", ns, "remote-log-dir")
		Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		sentinel := writeSentinel(dir)
		orphan := hostDir(ns, "remote-log-dir")
		Eventually(orphanSeries, timeout, interval).Should(HaveKeyWithValue(orphan, 1.0))

		By("a new claim of its group scheduled on its node")
		pvc := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		pv := provisioned(pvc, "node-a")
		Expect(pv.Spec.Local.Path).To(Equal(orphan))
		Expect(pv.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimRetain))
		Eventually(orphanSeries, timeout, interval).ShouldNot(HaveKey(orphan))
		Expect(os.ReadFile(sentinel)).To(Equal([]byte("precious")))

		By("its claim and volume deleted, as when the node is lost")
		deleteClaim(pvc)
		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
		Eventually(orphanReports("node-a", orphan), timeout, interval).Should(HaveLen(2))
		Expect(orphanSeries()).To(HaveKeyWithValue(orphan, 1.0))
		Expect(os.ReadFile(sentinel)).To(Equal([]byte("precious")))
	})

	It("reports what a cleanup that did not finish left aside, once its volume is gone", func() {
		pvc, pv, sentinel := boundWithData(ns, "node-a")
		deleteClaim(pvc)
		By("a cleanup that moved the directory aside: while its volume is there, it is under way or will be finished")
		dir := dirOn("node-a", ns, "remote-log-dir")
		Expect(os.Rename(dir, dir+".deleting-"+string(pv.UID))).To(Succeed())
		aside := hostDir(ns, "remote-log-dir") + ".deleting-" + string(pv.UID)
		Consistently(orphanSeries, 3*orphanScan, interval).ShouldNot(HaveKey(aside))

		By("the volume deleted, and the cleanup stopped there")
		Expect(k8sClient.Delete(ctx, pv)).To(Succeed())
		Eventually(pvGone(pv.Name), timeout, interval).Should(BeTrue())
		Eventually(orphanReports("node-a", aside), timeout, interval).Should(ConsistOf(
			ContainSubstring(aside + " (moved aside by a cleanup that did not finish)")))
		Expect(orphanSeries()).To(HaveKeyWithValue(aside, 1.0))
		Consistently(func() ([]byte, error) {
			return os.ReadFile(filepath.Join(dir+".deleting-"+string(pv.UID), filepath.Base(sentinel)))
		}, 2*orphanScan, interval).Should(Equal([]byte("precious")))
	})
})
