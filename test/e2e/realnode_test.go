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
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

// tmpfsMagic is statfs' type of a tmpfs.
const tmpfsMagic = 0x01021994

// volumeWriter is a server of the volume-writer test image (test/images/volume-writer) on the
// real node: one replica, its node-local volume "data" owned by uid 1000, gid 0, mode 755,
// mounted at /data, where the image records each of its runs; it serves the records on port.
func volumeWriter(ns, server, image string, port int32) *tarsv1beta1.TServer {
	return &tarsv1beta1.TServer{
		ObjectMeta: metav1.ObjectMeta{Name: "demo-" + server, Namespace: ns},
		Spec: tarsv1beta1.TServerSpec{
			App: "demo", Server: server, SubType: tarsv1beta1.SubTypeNormal,
			Normal:  &tarsv1beta1.TServerNormal{Ports: []tarsv1beta1.TServerPort{{Name: "http", Port: port, IsTcp: true}}},
			Release: &tarsv1beta1.TServerRelease{ID: "v1", Image: image},
			K8S: tarsv1beta1.TServerK8S{
				Replicas:        1,
				ImagePullPolicy: corev1.PullNever,
				Args:            []string{"--dir", "/data", "--listen", ":" + strconv.Itoa(int(port))},
				NodeSelector: []corev1.NodeSelectorRequirement{
					{Key: localcluster.RealNodeLabel, Operator: corev1.NodeSelectorOpExists},
				},
				Mounts: []tarsv1beta1.TK8SMount{{Name: "data", MountPath: "/data", Source: tarsv1beta1.TK8SMountSource{
					TLocalVolume: &tarsv1beta1.TLocalVolume{UID: "1000", GID: "0", Mode: "755"},
				}}},
			},
		},
	}
}

// waitBound waits until the claim of volume of ts's first replica is bound and returns the node of
// its volume.
func waitBound(ts *tarsv1beta1.TServer, volume string) string {
	var pvc *corev1.PersistentVolumeClaim
	Eventually(func() corev1.PersistentVolumeClaimPhase {
		if pvc = getClaim(ts.Namespace, claimName(volume, ts, 0)); pvc == nil {
			return ""
		}
		return pvc.Status.Phase
	}, timeout, interval).Should(Equal(corev1.ClaimBound))
	return volumeOf(ts.Namespace, pvc.Name).Labels[corev1.LabelHostname]
}

// served is what a server of volumeWriter serves at addr (host:port): its volume's records.
func served(addr string) func() (string, error) {
	return func() (string, error) { return httpGet("http://" + addr + "/") }
}

var _ = Describe("A real node (kubelet, containerd, runc) with the agent DaemonSet", Ordered, func() {
	var ns, node string

	BeforeAll(func() {
		if noRealNode != nil {
			Skip(fmt.Sprintf("SKIPPED, no real node: %v", noRealNode))
		}
		node = cluster.RealNodeName()
		By("waiting for the agent DaemonSet's pod, from the operator's image, to be ready there")
		Eventually(func(g Gomega) {
			dss := &appsv1.DaemonSetList{}
			g.Expect(k8sClient.List(ctx, dss, client.MatchingLabels{"app.kubernetes.io/component": "agent"})).To(Succeed())
			g.Expect(dss.Items).To(HaveLen(1))
			g.Expect(dss.Items[0].Status.NumberReady).To(BeEquivalentTo(1))
			pods := &corev1.PodList{}
			g.Expect(k8sClient.List(ctx, pods, client.InNamespace(dss.Items[0].Namespace),
				client.MatchingLabels{"app.kubernetes.io/component": "agent"})).To(Succeed())
			g.Expect(pods.Items).To(HaveLen(1))
			pod := pods.Items[0]
			g.Expect(pod.Spec.NodeName).To(Equal(node))
			// As rendered: its host root, read-only root filesystem and three capabilities.
			g.Expect(pod.Spec.Volumes).To(ContainElement(HaveField("HostPath.Path", localcluster.ProductionHostRoot)))
			sc := pod.Spec.Containers[0].SecurityContext
			g.Expect(*sc.ReadOnlyRootFilesystem).To(BeTrue())
			g.Expect(sc.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
			g.Expect(sc.Capabilities.Add).To(ConsistOf(corev1.Capability("CHOWN"), corev1.Capability("FOWNER"),
				corev1.Capability("DAC_OVERRIDE")))
		}, 2*timeout, interval).Should(Succeed())
		// Cordoned but while these specs run: other specs' images are not on the node.
		cordon(node, false)
		DeferCleanup(cordon, node, true)
	})

	BeforeEach(func() { ns = newNamespace() })

	It("runs a server's container as the claim's uid; it writes into its volume and finds its data "+
		"again after its pod is deleted", func() {
		ts := volumeWriter(ns, "writer", "localhost/volume-writer:uid-1000", 8080)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		Expect(waitRunning(ts, 1, "data")).To(Equal([]string{node}))
		dir := hostDir(node, ts, "data")
		Expect(ownershipOf(dir)).To(Equal([]any{uint32(1000), uint32(0), os.FileMode(0o755)}))
		first := "run 1 uid=1000 gid=0 pod=demo-writer-0 previous=0\n"
		Eventually(func() (string, error) {
			data, err := os.ReadFile(filepath.Join(dir, "boots"))
			return string(data), err
		}, timeout, interval).Should(Equal(first))

		By("deleting the pod: the new one runs on the same node and reads what the first wrote")
		pod := restartPod(ns, ts.Name+"-0")
		Expect(pod.Spec.NodeName).To(Equal(node))
		Eventually(served(pod.Status.PodIP+":8080"), timeout, interval).Should(
			Equal(first + "run 2 uid=1000 gid=0 pod=demo-writer-0 previous=1\n"))
	})

	It("keeps out a container whose uid the volume's mode forbids to write", func() {
		ts := volumeWriter(ns, "intruder", "localhost/volume-writer:uid-2000", 8080)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		Expect(waitBound(ts, "data")).To(Equal(node))
		// Owned as the claim asks: uid 2000 is kept out by the mode, not by a root-owned directory.
		dir := hostDir(node, ts, "data")
		Eventually(func() []any { return ownershipOf(dir) }, timeout, interval).Should(
			Equal([]any{uint32(1000), uint32(0), os.FileMode(0o755)}))
		Eventually(func() string {
			pod := getPod(ns, ts.Name+"-0")
			if pod == nil || len(pod.Status.ContainerStatuses) == 0 {
				return ""
			}
			st := pod.Status.ContainerStatuses[0]
			for _, t := range []*corev1.ContainerStateTerminated{st.State.Terminated, st.LastTerminationState.Terminated} {
				if t != nil {
					return fmt.Sprintf("exit %d: %s", t.ExitCode, t.Message)
				}
			}
			return ""
		}, timeout, interval).Should(And(HavePrefix("exit 1: uid 2000 "),
			HaveSuffix("open /data/boots: permission denied")))
		Expect(filepath.Join(dir, "boots")).NotTo(BeAnExistingFile())
	})

	It("runs a server with host networking, its delay-bind claim bound on the node, serving on the host", func() {
		port, err := localcluster.FreePort()
		Expect(err).NotTo(HaveOccurred())
		ts := volumeWriter(ns, "realhostnet", "localhost/volume-writer:uid-1000", int32(port))
		ts.Spec.K8S.HostNetwork = true
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		Expect(waitRunning(ts, 1, tarsv1beta1.DelayBindVolumeName, "data")).To(Equal([]string{node}))
		Expect(volumeOf(ns, claimName("delay-bind", ts, 0)).Labels[corev1.LabelHostname]).To(Equal(node))
		Eventually(served("127.0.0.1:"+strconv.Itoa(port)), timeout, interval).Should(HavePrefix("run 1 uid=1000 gid=0 "))
	})

	It("makes a volume on a disk mounted below the host root after the agent started (HostToContainer)", func() {
		disk := filepath.Join(cluster.HostRoot(node), ns)
		Expect(os.MkdirAll(disk, 0o755)).To(Succeed())
		Expect(syscall.Mount("tmpfs", disk, "tmpfs", 0, "size=16m")).To(Succeed())
		// Cleanups run last first: the disk goes whatever becomes of the server.
		DeferCleanup(func() { Expect(syscall.Unmount(disk, syscall.MNT_DETACH)).To(Succeed()) })
		ts := volumeWriter(ns, "mounted", "localhost/volume-writer:uid-1000", 8080)
		DeferCleanup(func(ctx context.Context) {
			// The server goes first: its container holds the disk.
			Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, ts))).To(Succeed())
			Eventually(func() *corev1.Pod { return getPod(ns, ts.Name+"-0") }, timeout, interval).Should(BeNil())
		})
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		Expect(waitRunning(ts, 1, "data")).To(Equal([]string{node}))
		// Were the disk hidden from the agent, it would have made the directory beneath it, and
		// the kubelet, which sees the disk, would not have found it.
		dir := hostDir(node, ts, "data")
		var fs syscall.Statfs_t
		Expect(syscall.Statfs(dir, &fs)).To(Succeed())
		Expect(fs.Type).To(BeEquivalentTo(tmpfsMagic))
		Eventually(func() (string, error) {
			data, err := os.ReadFile(filepath.Join(dir, "boots"))
			return string(data), err
		}, timeout, interval).Should(HavePrefix("run 1 uid=1000 gid=0 "))
	})
})
