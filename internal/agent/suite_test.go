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
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/compat"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
	"github.com/tserver-operator/tserver-operator/internal/testenv"
)

const (
	hostRoot    = "/usr/local/app/tars/host-mount"
	gcGrace     = 2 * time.Second
	resync      = 500 * time.Millisecond
	orphanScan  = 500 * time.Millisecond
	usageEvery  = 300 * time.Millisecond
	diskCheck   = 200 * time.Millisecond
	timeout     = 15 * time.Second
	interval    = 100 * time.Millisecond
	testStorage = tarsv1beta1.StorageClassName
)

// labelByHand says the API server serves no MutatingAdmissionPolicy (Kubernetes before 1.36):
// schedule labels claims with their node, as the manager's fallback does.
var labelByHand bool

// roomyDisk is a host root's filesystem with room: half its space and inodes free.
var roomyDisk = hostfs.FilesystemStats{Bytes: 100 << 30, BytesAvailable: 50 << 30, Inodes: 1 << 20, InodesFree: 1 << 19}

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	// agents are the running agents by node name.
	agents = map[string]*testAgent{}
)

// testAgent is one node's agent running in this process, with its own host root.
type testAgent struct {
	node, hostname string
	dir            string // the host root as this process reaches it
	// disk is what the agent reads of its host root's filesystem: roomy unless a test says; nil
	// fails the read.
	disk  atomic.Pointer[hostfs.FilesystemStats]
	cache client.Reader
	stop  context.CancelFunc
	done  chan struct{}
}

func TestAgent(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Agent Suite")
}

var _ = BeforeSuite(func() {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			Fail(fmt.Sprintf("the agent suite gives directories other owners, which needs root; under CI it runs as uid %d",
				os.Geteuid()))
		}
		Skip(fmt.Sprintf("skipped: the agent suite gives directories other owners, which needs root; this runs as uid %d",
			os.Geteuid()))
	}
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	ctx, cancel = context.WithCancel(context.TODO())

	testEnv = testenv.New(false)
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())

	By("installing the admission policies that label claims with the node of their pod and name their provisioner")
	server, err := compat.Probe(discovery.NewDiscoveryClientForConfigOrDie(cfg))
	Expect(err).NotTo(HaveOccurred())
	if labelByHand = !server.MutatingAdmissionPolicy; labelByHand {
		By("Kubernetes " + server.Version.String() + " serves no MutatingAdmissionPolicy: the tests label " +
			"claims with their node, as the manager does there")
	} else {
		createManifests(filepath.Join("..", "..", "config", "storageclass", "claim-node-label.yaml"))
		createManifests(filepath.Join("..", "..", "config", "storageclass", "claim-provisioner.yaml"))
		waitForClaimLabelPolicy()
	}
	useProvisioner(tarsv1beta1.Provisioner)

	By("registering three nodes: two that support local volumes, one that does not")
	for name, support := range map[string]bool{"node-a": true, "node-b": true, "node-c": false} {
		labels := map[string]string{corev1.LabelHostname: "host-" + name[len("node-"):]}
		if support {
			labels[tarsv1beta1.LabelSupportLocalVolume] = "true"
		}
		Expect(k8sClient.Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}})).To(Succeed())
		startAgent(name, labels[corev1.LabelHostname], GinkgoT().TempDir())
	}
})

var _ = AfterSuite(func() {
	if cancel == nil {
		return
	}
	for _, a := range agents {
		a.stop()
		<-a.done
	}
	cancel()
	Expect(testEnv.Stop()).To(Succeed())
})

// useProvisioner makes t-storage-class anew with provisioner (a class's provisioner is immutable).
func useProvisioner(provisioner string) {
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: testStorage}}
	Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, sc))).To(Succeed())
	Eventually(func() error {
		return k8sClient.Create(ctx, &storagev1.StorageClass{
			ObjectMeta:        metav1.ObjectMeta{Name: testStorage},
			Provisioner:       provisioner,
			ReclaimPolicy:     new(corev1.PersistentVolumeReclaimDelete),
			VolumeBindingMode: new(storagev1.VolumeBindingWaitForFirstConsumer),
		})
	}, timeout, interval).Should(Succeed())
	if labelByHand {
		return // no admission policy names the provisioner
	}
	// The claim-provisioner policy reads the class, its parameter, a moment after it changed.
	want := ""
	if provisioner == tarsv1beta1.Provisioner {
		want = provisioner
	}
	Eventually(provisionerNamedAtCreate, timeout, interval).Should(Equal(want))
}

// provisionerNamedAtCreate creates a claim of the class and returns the provisioner its creation
// named in it (volume.kubernetes.io/storage-provisioner), then deletes it.
func provisionerNamedAtCreate() (string, error) {
	probe := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "provisioner-probe-", Namespace: "default",
			Labels: map[string]string{tarsv1beta1.LabelLocalVolume: "probe"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: new(testStorage),
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			},
		},
	}
	if err := k8sClient.Create(ctx, probe); err != nil {
		return "", err
	}
	return probe.Annotations[volumehelpers.AnnStorageProvisioner], k8sClient.Delete(ctx, probe)
}

// waitForClaimLabelPolicy waits until the API server applies the claim-labelling policy, which it
// loads a moment after the policy is created: until then, claims scheduled on a node would not
// reach that node's agent.
func waitForClaimLabelPolicy() {
	probe := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "policy-probe", Namespace: "default",
			Labels: map[string]string{tarsv1beta1.LabelLocalVolume: "probe"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			},
		},
	}
	Expect(k8sClient.Create(ctx, probe)).To(Succeed())
	Eventually(func() (string, error) {
		got := &corev1.PersistentVolumeClaim{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(probe), got); err != nil {
			return "", err
		}
		got.Annotations = map[string]string{"volume.kubernetes.io/selected-node": "probe-node"}
		if err := k8sClient.Update(ctx, got); err != nil {
			return "", err
		}
		return got.Labels[tarsv1beta1.LabelSelectedNode], nil
	}, timeout, interval).Should(Equal("probe-node"))
	Expect(k8sClient.Delete(ctx, probe)).To(Succeed())
}

// createManifests creates the objects of a YAML file.
func createManifests(path string) {
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = f.Close() }()
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			Expect(err).To(MatchError(io.EOF))
			return
		}
		if len(obj.Object) > 0 {
			Expect(k8sClient.Create(ctx, obj)).To(Succeed())
		}
	}
}

// startAgent runs an agent for node, as tserver-agent would, with dir as its host root.
func startAgent(node, hostname, dir string) {
	startAgentWith(node, hostname, dir, nil)
}

// startAgentWith runs an agent whose client's calls go through funcs first, if not nil: a test
// can act between the agent's reads and its writes.
func startAgentWith(node, hostname, dir string, funcs *interceptor.Funcs) {
	runAgent(node, hostname, dir, agentOptions{funcs: funcs, disk: &roomyDisk, orphanScan: orphanScan})
}

// isVolumeList says whether req lists every volume of the cluster from the API server (a cache's
// list, of the volumes of some labels, aside).
func isVolumeList(req *http.Request) bool {
	q := req.URL.Query()
	return req.Method == http.MethodGet && req.URL.Path == "/api/v1/persistentvolumes" &&
		q.Get("watch") == "" && q.Get("labelSelector") == ""
}

// agentOnNewNode registers node, labelled with hostname and as supporting local volumes, and
// runs its agent, with o, on a host root of its own until the spec ends. (An agent that sees its
// requests to act between them, also those of its API reader, which o.funcs do not see, is best
// given no orphan scan, which would add some.)
func agentOnNewNode(node, hostname string, o agentOptions) {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{
		corev1.LabelHostname: hostname, tarsv1beta1.LabelSupportLocalVolume: "true",
	}}}
	Expect(client.IgnoreAlreadyExists(k8sClient.Create(ctx, n))).To(Succeed())
	runAgent(node, hostname, GinkgoT().TempDir(), o)
	DeferCleanup(func() {
		a := agents[node]
		a.stop()
		<-a.done
	})
}

// startAgentOnDisk runs an agent that reads disk as its host root's filesystem from the start.
func startAgentOnDisk(node, hostname, dir string, disk *hostfs.FilesystemStats) {
	runAgent(node, hostname, dir, agentOptions{disk: disk, orphanScan: orphanScan})
}

// errNoStatfs is what an agent reads of its host root's filesystem while its disk is nil.
var errNoStatfs = errors.New("statfs: input/output error")

// agentOptions are how a test agent differs from tserver-agent's: its client's calls go through
// funcs first if not nil; disk is its host root's filesystem as it reads it; seen, if not nil,
// sees each request before it is sent.
type agentOptions struct {
	funcs      *interceptor.Funcs
	disk       *hostfs.FilesystemStats
	orphanScan time.Duration
	seen       func(*http.Request)
	// answer, where it returns a response, answers the agent's request in place of the API server.
	answer func(*http.Request) *http.Response
}

func runAgent(node, hostname, dir string, o agentOptions) {
	root, err := hostfs.Open(dir)
	Expect(err).NotTo(HaveOccurred())
	opts := ctrl.Options{
		Scheme:     NewScheme(),
		Cache:      CacheOptions(node, hostname, testStorage),
		Metrics:    metricsserver.Options{BindAddress: "0"},
		Controller: config.Controller{SkipNameValidation: new(true)}, // several agents in one process
	}
	if o.funcs != nil {
		opts.NewClient = func(config *rest.Config, options client.Options) (client.Client, error) {
			c, err := client.NewWithWatch(config, options)
			if err != nil {
				return nil, err
			}
			return interceptor.NewClient(c, *o.funcs), nil
		}
	}
	agentCfg := cfg
	if o.seen != nil || o.answer != nil {
		agentCfg = rest.CopyConfig(cfg)
		agentCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
			return promhttp.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
				if o.seen != nil {
					o.seen(req)
				}
				if o.answer != nil {
					if resp := o.answer(req); resp != nil {
						return resp, nil
					}
				}
				return rt.RoundTrip(req)
			})
		})
	}
	mgr, err := ctrl.NewManager(agentCfg, opts)
	Expect(err).NotTo(HaveOccurred())
	a := &testAgent{node: node, hostname: hostname, dir: dir, cache: mgr.GetCache(), done: make(chan struct{})}
	a.disk.Store(o.disk)
	minFreeSpace, err := ParseFreeFloor("10%", false)
	Expect(err).NotTo(HaveOccurred())
	minFreeInodes, err := ParseFreeFloor("1000", true)
	Expect(err).NotTo(HaveOccurred())
	Expect(SetupWithManager(mgr, Config{
		NodeName: node, Hostname: hostname, HostRoot: hostRoot, Root: root,
		StorageClassName: testStorage, GCGracePeriod: gcGrace, ResyncPeriod: resync, OrphanScanInterval: o.orphanScan,
		UsageInterval: usageEvery, UsageRate: 1000,
		MinFreeSpace: minFreeSpace, MinFreeInodes: minFreeInodes, DiskCheckInterval: diskCheck,
		Filesystem: func() (hostfs.FilesystemStats, error) {
			if d := a.disk.Load(); d != nil {
				return *d, nil
			}
			return hostfs.FilesystemStats{}, errNoStatfs
		},
	})).To(Succeed())
	agentCtx, stop := context.WithCancel(ctx)
	a.stop = stop
	agents[node] = a
	go func() {
		defer GinkgoRecover()
		defer close(a.done)
		defer func() { _ = root.Close() }()
		Expect(mgr.Start(agentCtx)).To(Succeed())
	}()
}
