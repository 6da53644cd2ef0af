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
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/agent"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

func newNamespace() string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// tarslog reads the tarslog sample into namespace ns, away from the nodes the node-loss specs
// lose. Its server name gets the namespace's suffix: claims select volumes by app, server and
// volume name alone, so two namespaces running the same server could bind each other's volumes
// (see README, "Limits").
func tarslog(ns string) *tarsv1beta1.TServer {
	data, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", "tars-tarslog.yaml"))
	Expect(err).NotTo(HaveOccurred())
	ts := &tarsv1beta1.TServer{}
	Expect(yaml.UnmarshalStrict(data, ts)).To(Succeed())
	ts.Namespace = ns
	ts.Spec.Server += strings.TrimPrefix(ns, "e2e-")
	ts.Name = tarsv1beta1.ResourceName(ts.Spec.App, ts.Spec.Server)
	ts.Spec.K8S.NodeSelector = []corev1.NodeSelectorRequirement{awayFromLossPool}
	return ts
}

// edit changes the stored TServer, retrying on conflicts.
func edit(ts *tarsv1beta1.TServer, change func(*tarsv1beta1.TServer)) {
	Eventually(func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), ts); err != nil {
			return err
		}
		change(ts)
		return k8sClient.Update(ctx, ts)
	}, timeout, interval).Should(Succeed())
}

func claimName(volume string, ts *tarsv1beta1.TServer, ordinal int) string {
	return fmt.Sprintf("%s-%s-%d", volume, ts.Name, ordinal)
}

func getClaim(ns, name string) *corev1.PersistentVolumeClaim {
	pvc := &corev1.PersistentVolumeClaim{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pvc); err != nil {
		return nil
	}
	return pvc
}

func getPod(ns, name string) *corev1.Pod {
	pod := &corev1.Pod{}
	if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
		return nil
	}
	return pod
}

func podReady(pod *corev1.Pod) bool {
	if pod == nil || pod.Status.Phase != corev1.PodRunning || pod.DeletionTimestamp != nil {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// restartPod deletes a pod and returns its replacement once it is ready.
func restartPod(ns, name string) *corev1.Pod {
	old := getPod(ns, name)
	Expect(old).NotTo(BeNil())
	Expect(k8sClient.Delete(ctx, old)).To(Succeed())
	var pod *corev1.Pod
	Eventually(func() bool {
		pod = getPod(ns, name)
		return pod != nil && pod.UID != old.UID && podReady(pod)
	}, timeout, interval).Should(BeTrue())
	return pod
}

// waitRunning waits until pods 0..replicas-1 of ts are ready and their claims of volumes bound,
// and returns the node of each pod.
func waitRunning(ts *tarsv1beta1.TServer, replicas int, volumes ...string) []string {
	nodes := make([]string, replicas)
	Eventually(func(g Gomega) {
		for i := range replicas {
			for _, v := range volumes {
				pvc := getClaim(ts.Namespace, claimName(v, ts, i))
				g.Expect(pvc).NotTo(BeNil(), "claim %s", claimName(v, ts, i))
				g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound), "claim %s", pvc.Name)
			}
			pod := getPod(ts.Namespace, fmt.Sprintf("%s-%d", ts.Name, i))
			g.Expect(podReady(pod)).To(BeTrue(), "pod %s-%d", ts.Name, i)
			nodes[i] = pod.Spec.NodeName
		}
	}, timeout, interval).Should(Succeed())
	return nodes
}

// readyReplicas counts the ready pods among the first n replicas of ts.
func readyReplicas(ts *tarsv1beta1.TServer, n int) int {
	ready := 0
	for i := range n {
		if podReady(getPod(ts.Namespace, fmt.Sprintf("%s-%d", ts.Name, i))) {
			ready++
		}
	}
	return ready
}

// agentMetrics is what node's agent serves on its metrics endpoint.
func agentMetrics(node string) (string, error) {
	p := cluster.Agent(node)
	if p == nil {
		return "", fmt.Errorf("no agent runs on %s", node)
	}
	return httpGet("http://" + p.MetricsAddr + "/metrics")
}

// httpGet is the body of url's answer, which must be 200 OK.
func httpGet(url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body), err
}

// volumeOf is the volume a claim is bound to.
func volumeOf(ns, claim string) *corev1.PersistentVolume {
	pvc := getClaim(ns, claim)
	Expect(pvc).NotTo(BeNil())
	pv := &corev1.PersistentVolume{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: pvc.Spec.VolumeName}, pv)).To(Succeed())
	return pv
}

// volumesOf lists the volumes of one group (namespace, server, volume) across all nodes.
func volumesOf(ns string, ts *tarsv1beta1.TServer, volume string) []corev1.PersistentVolume {
	list := &corev1.PersistentVolumeList{}
	Expect(k8sClient.List(ctx, list, client.MatchingLabels{
		tarsv1beta1.LabelServerApp:   ts.Spec.App,
		tarsv1beta1.LabelServerName:  ts.Spec.Server,
		tarsv1beta1.LabelLocalVolume: volume,
	})).To(Succeed())
	var out []corev1.PersistentVolume
	for _, pv := range list.Items {
		node := pv.Labels[corev1.LabelHostname]
		if pv.Name == tarsv1beta1.LocalVolumeName(ns, volume, ts.Spec.App, ts.Spec.Server, node,
			tarsv1beta1.StorageClassName) {
			out = append(out, pv)
		}
	}
	return out
}

// madeBeforehand creates the unbound volume (and directory) TarsK8S's agent of node made for
// volume of ts before any of its claims was scheduled, as its agents did on every node.
func madeBeforehand(node string, ts *tarsv1beta1.TServer, volume string) *corev1.PersistentVolume {
	cfg := agent.Config{NodeName: node, Hostname: node, HostRoot: localcluster.ProductionHostRoot,
		StorageClassName: tarsv1beta1.StorageClassName}
	claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
		Namespace: ts.Namespace,
		Labels: map[string]string{
			tarsv1beta1.LabelServerApp:   ts.Spec.App,
			tarsv1beta1.LabelServerName:  ts.Spec.Server,
			tarsv1beta1.LabelLocalVolume: volume,
		},
	}}
	pv := cfg.Volume(claim, corev1.PersistentVolumeReclaimDelete)
	pv.Spec.ClaimRef = nil
	Expect(os.MkdirAll(hostDir(node, ts, volume), 0o755)).To(Succeed())
	Expect(k8sClient.Create(ctx, pv)).To(Succeed())
	Eventually(func() corev1.PersistentVolumePhase {
		got := &corev1.PersistentVolume{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(pv), got)).To(Succeed())
		return got.Status.Phase
	}, timeout, interval).Should(Equal(corev1.VolumeAvailable))
	return pv
}

// useProvisioner makes t-storage-class anew with provisioner (a class's provisioner is
// immutable), as an administrator replacing TarsK8S's class would.
func useProvisioner(provisioner string) {
	sc := &storagev1.StorageClass{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: tarsv1beta1.StorageClassName}, sc)).To(Succeed())
	if sc.Provisioner == provisioner {
		return
	}
	Expect(k8sClient.Delete(ctx, sc)).To(Succeed())
	Eventually(func() error {
		return k8sClient.Create(ctx, &storagev1.StorageClass{
			ObjectMeta:        metav1.ObjectMeta{Name: sc.Name},
			Provisioner:       provisioner,
			ReclaimPolicy:     sc.ReclaimPolicy,
			VolumeBindingMode: sc.VolumeBindingMode,
		})
	}, timeout, interval).Should(Succeed())
}

// hostDir is where a volume directory of ts really lives for node on this machine.
func hostDir(node string, ts *tarsv1beta1.TServer, volume string) string {
	return filepath.Join(cluster.HostRoot(node), ts.Namespace, ts.Spec.App+"."+ts.Spec.Server, volume)
}

func ownershipOf(path string) []any {
	fi, err := os.Stat(path)
	if err != nil {
		return []any{err.Error()}
	}
	st := fi.Sys().(*syscall.Stat_t)
	return []any{st.Uid, st.Gid, fi.Mode().Perm()}
}

var _ = Describe("The seed's story on a local cluster", func() {
	var ns string
	BeforeEach(func() {
		ns = newNamespace()
		By("working in namespace " + ns)
	})

	It("runs tarslog with bound node-local volumes, one replica per node, "+
		"never on a node without local volume support", func() {
		ts := tarslog(ns)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		Expect(nodes[0]).NotTo(Equal(nodes[1]), "replicas share a node")

		for i, node := range nodes {
			pv := volumeOf(ns, claimName("remote-log-dir", ts, i))
			By("binding claim " + claimName("remote-log-dir", ts, i) + " to " + pv.Name + " on " + node)
			Expect(pv.Name).To(Equal(tarsv1beta1.LocalVolumeName(ns, "remote-log-dir", "tars", ts.Spec.Server, node,
				"t-storage-class")))
			Expect(pv.Labels).To(Equal(map[string]string{
				"tars.io/LocalVolume": "remote-log-dir", "tars.io/ServerApp": "tars", "tars.io/ServerName": ts.Spec.Server,
				"kubernetes.io/hostname": node,
			}))
			Expect(pv.Spec.Local.Path).To(Equal(localcluster.ProductionHostRoot + "/" + ns + "/tars." + ts.Spec.Server +
				"/remote-log-dir"))
			Expect(pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions).To(Equal(
				[]corev1.NodeSelectorRequirement{
					{Key: "kubernetes.io/hostname", Operator: corev1.NodeSelectorOpIn, Values: []string{node}},
				}))
			Expect(pv.Spec.PersistentVolumeReclaimPolicy).To(Equal(corev1.PersistentVolumeReclaimDelete))
			Expect(pv.Spec.StorageClassName).To(Equal("t-storage-class"))
			Expect(ownershipOf(hostDir(node, ts, "remote-log-dir"))).To(Equal(
				[]any{uint32(1000), uint32(0), os.FileMode(0o755)}))
		}

		By("making one volume per claim, on no other node, never on " + ineligibleNode)
		Consistently(func() int { return len(volumesOf(ns, ts, "remote-log-dir")) }, 2*time.Second, interval).Should(Equal(2))
		for _, node := range append(eligibleNodes, ineligibleNode) {
			if node != nodes[0] && node != nodes[1] {
				Expect(hostDir(node, ts, "remote-log-dir")).NotTo(BeADirectory(), "directory on %s", node)
			}
		}
		By("labelling each claim with the node of its pod")
		for i, node := range nodes {
			Expect(getClaim(ns, claimName("remote-log-dir", ts, i)).Labels).To(
				HaveKeyWithValue(tarsv1beta1.LabelSelectedNode, node))
		}

		Eventually(func() *metav1.Condition {
			got := &tarsv1beta1.TServer{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), got)).To(Succeed())
			return meta.FindStatusCondition(got.Status.Conditions, "VolumesBound")
		}, timeout, interval).Should(HaveField("Status", metav1.ConditionTrue))
		By("saying in its status where each replica's volumes are (kubectl get ts -o wide)")
		Eventually(func() string {
			got := &tarsv1beta1.TServer{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), got)).To(Succeed())
			return got.Status.VolumeNodes
		}, timeout, interval).Should(Equal(nodes[0] + "," + nodes[1]))
	})

	It("spreads the pods of servers with local volumes over the nodes, where their data stays", func() {
		// Equal nodes tie in the scheduler's scoring, and it breaks ties the same way each time:
		// without the spread constraint these one-replica servers would land on one node.
		suffixes := []string{"a", "b", "c"}
		nodes := make([]string, 0, len(suffixes))
		for _, suffix := range suffixes {
			ts := tarslog(ns)
			ts.Spec.Server += suffix
			ts.Name = tarsv1beta1.ResourceName(ts.Spec.App, ts.Spec.Server)
			ts.Spec.K8S.Replicas = 1
			Expect(k8sClient.Create(ctx, ts)).To(Succeed())
			nodes = append(nodes, waitRunning(ts, 1, "remote-log-dir")[0])
			By(ts.Name + " runs on " + nodes[len(nodes)-1])
		}
		Expect(nodes).To(ConsistOf(eligibleNodes), "one server per node")
	})

	It("brings a deleted pod back on the node of its volume, with its data", func() {
		ts := tarslog(ns)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		file := filepath.Join(hostDir(nodes[0], ts, "remote-log-dir"), "app.log")
		Expect(os.WriteFile(file, []byte("written before the restart"), 0o644)).To(Succeed())

		for range 2 {
			Expect(restartPod(ns, ts.Name+"-0").Spec.NodeName).To(Equal(nodes[0]))
		}
		Expect(os.ReadFile(file)).To(Equal([]byte("written before the restart")))
	})

	It("says on the agent's metrics endpoint what each bound volume holds, as du does", func() {
		ts := tarslog(ns)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		dir := hostDir(nodes[0], ts, "remote-log-dir")
		for i := range 25 {
			Expect(os.WriteFile(filepath.Join(dir, fmt.Sprintf("log.%d", i)), make([]byte, 100_000), 0o644)).To(Succeed())
		}
		du := func(args ...string) float64 {
			out, err := exec.Command("du", append(args, dir)...).Output()
			Expect(err).NotTo(HaveOccurred())
			n, err := strconv.ParseFloat(strings.Fields(string(out))[0], 64)
			Expect(err).NotTo(HaveOccurred())
			return n
		}
		want := map[string]float64{"tserver_agent_volume_used_bytes": du("-sxB1"),
			"tserver_agent_volume_used_inodes": du("-sx", "--inodes")}
		Expect(want["tserver_agent_volume_used_bytes"]).To(BeNumerically(">=", 25*100_000))
		labels := fmt.Sprintf(`{namespace=%q,node=%q,persistentvolume=%q,persistentvolumeclaim=%q,tserver=%q,volume=%q} `,
			ns, nodes[0], volumeOf(ns, claimName("remote-log-dir", ts, 0)).Name, claimName("remote-log-dir", ts, 0),
			ts.Name, "remote-log-dir")
		Eventually(func(g Gomega) {
			body, err := agentMetrics(nodes[0])
			g.Expect(err).NotTo(HaveOccurred())
			got := map[string]float64{}
			for line := range strings.Lines(body) {
				if name, value, ok := strings.Cut(strings.TrimSpace(line), labels); ok && want[name] > 0 {
					got[name], err = strconv.ParseFloat(value, 64)
					g.Expect(err).NotTo(HaveOccurred())
				}
			}
			g.Expect(got).To(Equal(want))
			g.Expect(body).To(MatchRegexp(`tserver_agent_host_root_bytes\{kind="available",node=%q\} \d`, nodes[0]))
		}, timeout, interval).Should(Succeed())
	})

	It("reports a directory made by hand below the host root, with its size, and leaves it", func() {
		node := eligibleNodes[0]
		rel := filepath.Join(ns, "by.hand", "data")
		dir := filepath.Join(cluster.HostRoot(node), rel)
		Expect(os.MkdirAll(dir, 0o755)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "precious"), bytes.Repeat([]byte("precious"), 37_500), 0o644)).To(Succeed())
		hostPath := localcluster.ProductionHostRoot + "/" + rel
		Eventually(eventNotes("Node", node, "OrphanedDirectory"), timeout, interval).Should(
			ContainElement(ContainSubstring(hostPath)))
		Eventually(func(g Gomega) {
			body, err := agentMetrics(node)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(body).To(MatchRegexp(`tserver_agent_orphaned_directory_bytes\{path=%q\} 3\d{5}\n`, hostPath))
		}, timeout, interval).Should(Succeed())
		By("still there after more scans")
		Consistently(func() (int64, error) {
			fi, err := os.Stat(filepath.Join(dir, "precious"))
			if err != nil {
				return 0, err
			}
			return fi.Size(), nil
		}, 3*time.Second, interval).Should(Equal(int64(300_000)))
		Expect(slices.DeleteFunc(eventNotes("Node", node, "OrphanedDirectory")(), func(note string) bool {
			return !strings.Contains(note, hostPath)
		})).To(HaveLen(1), "reported once")
	})

	It("places no new volume on a node whose disk is nearly full, says why, keeps the replicas already there, "+
		"and takes new ones again once there is room", func() {
		full := eligibleNodes[2]
		before := tarslog(ns)
		before.Spec.K8S.Replicas = int32(len(eligibleNodes))
		Expect(k8sClient.Create(ctx, before)).To(Succeed())
		onFull := slices.Index(waitRunning(before, len(eligibleNodes), "remote-log-dir"), full)
		Expect(onFull).NotTo(Equal(-1), "a replica on %s", full)

		By("the agent of " + full + " told to keep all of its disk free: the node is marked full")
		DeferCleanup(func() {
			_, err := cluster.RestartAgent(ctx, full)
			Expect(err).NotTo(HaveOccurred())
		})
		_, err := cluster.RestartAgent(ctx, full, "--min-free-space=100%")
		Expect(err).NotTo(HaveOccurred())
		diskLabel := func() string {
			node := &corev1.Node{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: full}, node)).To(Succeed())
			return node.Labels[tarsv1beta1.LabelDiskFull]
		}
		Eventually(diskLabel, timeout, interval).Should(Equal(tarsv1beta1.DiskFullSpace))
		Eventually(eventsAbout("Node", full), timeout, interval).Should(ContainElement("DiskFull"))

		By("a replica whose volume is there comes back to it")
		Expect(restartPod(ns, fmt.Sprintf("%s-%d", before.Name, onFull)).Spec.NodeName).To(Equal(full))

		By("the replicas of a new server go to the other nodes")
		after := tarslog(ns)
		after.Spec.Server += "new"
		after.Name = tarsv1beta1.ResourceName(after.Spec.App, after.Spec.Server)
		Expect(k8sClient.Create(ctx, after)).To(Succeed())
		Expect(waitRunning(after, 2, "remote-log-dir")).NotTo(ContainElement(full))

		By("a third replica, which only the full node can take, waits, and the TServer says why")
		edit(after, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 3 })
		Eventually(func() string {
			pvc := getClaim(ns, claimName("remote-log-dir", after, 2))
			if pvc == nil {
				return ""
			}
			return pvc.Annotations[tarsv1beta1.AnnotationProvisioningRefused]
		}, timeout, interval).Should(HavePrefix("node " + full + ": the node's disk is full"))
		Eventually(condition(after, tarsv1beta1.ConditionVolumesBound), timeout, interval).Should(And(
			HaveField("Status", metav1.ConditionFalse), HaveField("Reason", tarsv1beta1.ReasonProvisioningRefused),
			HaveField("Message", ContainSubstring("refused by node "+full+": the node's disk is full"))))
		for _, pv := range volumesOf(ns, after, "remote-log-dir") {
			Expect(pv.Labels[corev1.LabelHostname]).NotTo(Equal(full), "volume %s", pv.Name)
		}

		By("room again: the mark goes, and the replica gets its volume there")
		_, err = cluster.RestartAgent(ctx, full)
		Expect(err).NotTo(HaveOccurred())
		Eventually(diskLabel, timeout, interval).Should(BeEmpty())
		Expect(waitRunning(after, 3, "remote-log-dir")[2]).To(Equal(full))
		Eventually(condition(after, tarsv1beta1.ConditionVolumesBound), timeout, interval).Should(
			HaveField("Status", metav1.ConditionTrue))
	})

	DescribeTable("pins a server with host networking to its node with a delay-bind claim",
		func(server string, pin func(*tarsv1beta1.TServerK8S), nodeSelector []corev1.NodeSelectorRequirement) {
			ts := &tarsv1beta1.TServer{
				ObjectMeta: metav1.ObjectMeta{Name: "demo-" + server, Namespace: ns},
				Spec: tarsv1beta1.TServerSpec{
					App: "demo", Server: server, SubType: tarsv1beta1.SubTypeNormal,
					Normal:  &tarsv1beta1.TServerNormal{Ports: []tarsv1beta1.TServerPort{{Name: "http", Port: 18080, IsTcp: true}}},
					Release: &tarsv1beta1.TServerRelease{ID: "v1", Image: "demo/" + server + ":v1"},
					K8S: tarsv1beta1.TServerK8S{Replicas: 1,
						NodeSelector: append([]corev1.NodeSelectorRequirement{awayFromLossPool}, nodeSelector...)},
				},
			}
			pin(&ts.Spec.K8S)
			Expect(k8sClient.Create(ctx, ts)).To(Succeed())
			node := waitRunning(ts, 1, tarsv1beta1.DelayBindVolumeName)[0]
			Expect(volumeOf(ns, claimName("delay-bind", ts, 0)).Labels[corev1.LabelHostname]).To(Equal(node))

			Expect(restartPod(ns, ts.Name+"-0").Spec.NodeName).To(Equal(node))
		},
		Entry("hostNetwork", "hostnet", func(k *tarsv1beta1.TServerK8S) { k.HostNetwork = true }, nil),
		Entry("hostIPC", "hostipc", func(k *tarsv1beta1.TServerK8S) { k.HostIPC = true }, nil),
		Entry("hostPorts", "hostport", func(k *tarsv1beta1.TServerK8S) {
			k.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: "http", Port: 28080}}
		}, nil),
		Entry("hostIPC on the node without local volume support", "ipcnode4",
			func(k *tarsv1beta1.TServerK8S) { k.HostIPC = true },
			[]corev1.NodeSelectorRequirement{{
				Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{ineligibleNode},
			}}),
	)

	It("applies a new uid, gid and mode to the bound directories", func() {
		ts := tarslog(ns)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		edit(ts, func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Mounts[0].Source.TLocalVolume = &tarsv1beta1.TLocalVolume{UID: "2000", GID: "100", Mode: "711"}
		})
		for _, node := range nodes {
			Eventually(func() []any { return ownershipOf(hostDir(node, ts, "remote-log-dir")) }, timeout, interval).
				Should(Equal([]any{uint32(2000), uint32(100), os.FileMode(0o711)}))
		}
	})

	It("keeps a scaled-down replica's bound claim and data; "+
		"collects TarsK8S's unused volumes after the grace period", func() {
		ts := tarslog(ns)
		By("finding an unused volume TarsK8S's agent made beforehand on every node")
		leftovers := make([]string, 0, len(eligibleNodes))
		for _, node := range eligibleNodes {
			leftovers = append(leftovers, madeBeforehand(node, ts, "remote-log-dir").Name)
		}
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")

		By("binding two of them, on the pods' nodes, and deleting the third after the grace period")
		Eventually(func() int { return len(volumesOf(ns, ts, "remote-log-dir")) }, timeout, interval).Should(Equal(2))
		for i, node := range nodes {
			pv := volumeOf(ns, claimName("remote-log-dir", ts, i))
			Expect(leftovers).To(ContainElement(pv.Name), "a new volume on %s, not TarsK8S's", node)
		}

		By("scaling down: the claim of the removed replica stays bound, its data kept")
		file := filepath.Join(hostDir(nodes[1], ts, "remote-log-dir"), "kept.log")
		Expect(os.WriteFile(file, []byte("x"), 0o644)).To(Succeed())
		edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 1 })
		Eventually(func() *corev1.Pod { return getPod(ns, ts.Name+"-1") }, timeout, interval).Should(BeNil())
		Consistently(func() int { return len(volumesOf(ns, ts, "remote-log-dir")) },
			gcGrace+3*time.Second, interval).Should(Equal(2))
		Expect(getClaim(ns, claimName("remote-log-dir", ts, 1)).Status.Phase).To(Equal(corev1.ClaimBound))
		Expect(file).To(BeARegularFile())
	})

	It("recreates the StatefulSet when a local volume is removed, never with all pods down, "+
		"and cleans the volume up", func() {
		ts := tarslog(ns)
		ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
			Name: "cache", MountPath: "/cache",
			Source: tarsv1beta1.TK8SMountSource{TLocalVolume: &tarsv1beta1.TLocalVolume{}},
		})
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir", "cache")
		oldSts := &appsv1.StatefulSet{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), oldSts)).To(Succeed())

		edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts = ts.Spec.K8S.Mounts[:1] })
		minReady := 2
		Eventually(func(g Gomega) {
			minReady = min(minReady, readyReplicas(ts, 2))
			sts := &appsv1.StatefulSet{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), sts)).To(Succeed())
			g.Expect(sts.UID).NotTo(Equal(oldSts.UID))
			g.Expect(sts.Spec.VolumeClaimTemplates).To(HaveLen(1))
			g.Expect(sts.Status.UpdatedReplicas).To(Equal(int32(2)))
			g.Expect(sts.Status.ReadyReplicas).To(Equal(int32(2)))
			g.Expect(sts.Status.CurrentRevision).To(Equal(sts.Status.UpdateRevision))
			for i := range 2 {
				g.Expect(getClaim(ns, claimName("cache", ts, i))).To(BeNil())
			}
		}, 3*timeout, 100*time.Millisecond).Should(Succeed())
		Expect(minReady).To(BeNumerically(">=", 1), "all pods were down at once")

		By("removing the removed volume's directories and volumes; keeping the other's")
		Eventually(func() []corev1.PersistentVolume { return volumesOf(ns, ts, "cache") },
			timeout, interval).Should(BeEmpty())
		for _, node := range nodes {
			Eventually(func() string { return hostDir(node, ts, "cache") }, timeout, interval).ShouldNot(BeADirectory())
			Expect(hostDir(node, ts, "remote-log-dir")).To(BeADirectory())
		}
	})

	It("recreates the StatefulSet when a local volume is added, replaces the pods one at a time, "+
		"and binds the new claims where the data is", func() {
		// The StatefulSet controller cannot add a volume to a running pod it adopted; left to it,
		// the pods keep running without the new claim for ever (a chaos run found this).
		ts := tarslog(ns)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		for i, node := range nodes {
			Expect(os.WriteFile(filepath.Join(hostDir(node, ts, "remote-log-dir"), "kept"),
				[]byte{byte(i)}, 0o644)).To(Succeed())
		}

		edit(ts, func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
				Name: "cache", MountPath: "/cache",
				Source: tarsv1beta1.TK8SMountSource{TLocalVolume: &tarsv1beta1.TLocalVolume{}},
			})
		})
		minReady := 2
		Eventually(func(g Gomega) {
			minReady = min(minReady, readyReplicas(ts, 2))
			for i := range 2 {
				pvc := getClaim(ns, claimName("cache", ts, i))
				g.Expect(pvc).NotTo(BeNil())
				g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
				pod := getPod(ns, fmt.Sprintf("%s-%d", ts.Name, i))
				g.Expect(podReady(pod)).To(BeTrue())
				g.Expect(pod.Spec.Volumes).To(ContainElement(HaveField("Name", "cache")))
			}
		}, 3*timeout, 100*time.Millisecond).Should(Succeed())
		Expect(minReady).To(BeNumerically(">=", 1), "all pods were down at once")

		By("keeping each replica on its node, with its data, the new volume beside it")
		for i, node := range nodes {
			Expect(getPod(ns, fmt.Sprintf("%s-%d", ts.Name, i)).Spec.NodeName).To(Equal(node))
			Expect(volumeOf(ns, claimName("cache", ts, i)).Labels).To(HaveKeyWithValue(corev1.LabelHostname, node))
			Expect(os.ReadFile(filepath.Join(hostDir(node, ts, "remote-log-dir"), "kept"))).To(Equal([]byte{byte(i)}))
		}
	})

	It("gives a new claim a fresh volume after the old claim is deleted", func() {
		ts := tarslog(ns)
		ts.Spec.K8S.Replicas = 1
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		node := waitRunning(ts, 1, "remote-log-dir")[0]
		old := getClaim(ns, claimName("remote-log-dir", ts, 0))
		oldVolume := volumeOf(ns, old.Name)
		Expect(os.WriteFile(filepath.Join(hostDir(node, ts, "remote-log-dir"), "old.log"), []byte("x"), 0o644)).To(Succeed())

		edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 0 })
		Eventually(func() *corev1.Pod { return getPod(ns, ts.Name+"-0") }, timeout, interval).Should(BeNil())
		Expect(k8sClient.Delete(ctx, old)).To(Succeed())

		By("releasing the volume, removing its directory and the volume (reclaim policy Delete)")
		Eventually(func() bool {
			pv := &corev1.PersistentVolume{}
			err := k8sClient.Get(ctx, client.ObjectKey{Name: oldVolume.Name}, pv)
			return apierrors.IsNotFound(err) || (err == nil && pv.UID != oldVolume.UID)
		}, timeout, interval).Should(BeTrue())

		edit(ts, func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 1 })
		newNode := waitRunning(ts, 1, "remote-log-dir")[0]
		fresh := getClaim(ns, claimName("remote-log-dir", ts, 0))
		Expect(fresh.UID).NotTo(Equal(old.UID))
		Expect(volumeOf(ns, fresh.Name).UID).NotTo(Equal(oldVolume.UID))
		Expect(filepath.Join(hostDir(newNode, ts, "remote-log-dir"), "old.log")).NotTo(BeAnExistingFile())
	})

	It("provisions nothing under TarsK8S's StorageClass, says why, and resumes once the class is replaced", func() {
		useProvisioner(tarsv1beta1.NoProvisioner)
		DeferCleanup(useProvisioner, tarsv1beta1.Provisioner)
		ts := tarslog(ns)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		Eventually(func() *metav1.Condition {
			got := &tarsv1beta1.TServer{}
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), got)).To(Succeed())
			return meta.FindStatusCondition(got.Status.Conditions, "VolumesBound")
		}, timeout, interval).Should(And(Not(BeNil()), HaveField("Reason", "StorageClassNotProvisioning")))
		Expect(volumesOf(ns, ts, "remote-log-dir")).To(BeEmpty())

		By("replacing the class, as the README says")
		useProvisioner(tarsv1beta1.Provisioner)
		waitRunning(ts, 2, "remote-log-dir")
	})

	It("garbage-collects the StatefulSet of a deleted TServer and keeps its claims and data", func() {
		ts := tarslog(ns)
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		nodes := waitRunning(ts, 2, "remote-log-dir")
		file := filepath.Join(hostDir(nodes[0], ts, "remote-log-dir"), "app.log")
		Expect(os.WriteFile(file, []byte("precious"), 0o644)).To(Succeed())

		Expect(k8sClient.Delete(ctx, ts)).To(Succeed())
		Eventually(func() bool {
			err := k8sClient.Get(ctx, client.ObjectKeyFromObject(ts), &appsv1.StatefulSet{})
			return apierrors.IsNotFound(err)
		}, timeout, interval).Should(BeTrue())
		Eventually(func() *corev1.Pod { return getPod(ns, ts.Name+"-0") }, timeout, interval).Should(BeNil())
		Consistently(func(g Gomega) {
			for i := range 2 {
				pvc := getClaim(ns, claimName("remote-log-dir", ts, i))
				g.Expect(pvc).NotTo(BeNil())
				g.Expect(pvc.Status.Phase).To(Equal(corev1.ClaimBound))
			}
		}, gcGrace+2*time.Second, interval).Should(Succeed())
		Expect(os.ReadFile(file)).To(Equal([]byte("precious")))
	})
})
