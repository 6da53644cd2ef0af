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

package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// RealNode is a node of real machinery beside the simulated ones: a kubelet that runs its pods'
// containers with containerd and runc, on this machine. Its pods mount real directories; its
// agent is the operator's DaemonSet (DeployAgent), from the operator's image, not a process of
// the cluster's. A cluster has at most one: it uses this machine's cgroups, a network bridge and
// a route to the API server for its pods, of which there can be only one set. It needs root,
// Linux, and Debian's containerd, runc and containernetworking-plugins (RealNodeSupport).
type RealNode struct {
	// Name is the node's name (its kubelet's --hostname-override).
	Name string
	// Labels are the labels its kubelet registers it with, beside RealNodeLabel.
	Labels map[string]string
	// Images are image archives its containerd imports at start (`make images` builds them).
	Images []string
	// SandboxImage is the name of the pod sandbox ("pause") image, one of Images.
	SandboxImage string
}

// LocalRealNode is the real node of `make run REAL_NODES=1` and the end-to-end tests: real-1,
// labelled as TarsNodes are, its images the archives of imageDir that `make images` builds (the
// pause image among them, localhost/pause:local).
func LocalRealNode(imageDir string) (*RealNode, error) {
	images, err := filepath.Glob(filepath.Join(imageDir, "*.tar"))
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(images, func(p string) bool { return filepath.Base(p) == "pause.tar" }) {
		return nil, fmt.Errorf("no pause.tar in %s: run `make images`", imageDir)
	}
	return &RealNode{Name: "real-1", Labels: TarsNodes(1)[0].Labels, Images: images,
		SandboxImage: "localhost/pause:local"}, nil
}

// RealNodeLabel marks the real node (value "true").
const RealNodeLabel = "localcluster.tars.io/real-node"

// The real node's network: a bridge with podSubnet, the host's address on it (gatewayIP, the
// node's InternalIP, where its kubelet listens), and apiServiceIP, the address of the
// `kubernetes` Service (the first of envtest's service range, 10.0.0.0/24) that the cluster routes
// to the API server for pods, as kube-proxy would.
const (
	bridgeName   = "tsrvlc0"
	podSubnet    = "10.88.0.0/24"
	gatewayIP    = "10.88.0.1"
	apiServiceIP = "10.0.0.1"
	// natChain holds the real node's route to the API server in iptables' nat table.
	natChain = "TSERVER-LOCALCLUSTER"
	// cgroupRoot is where the kubelet puts its pods' cgroups, so that the cluster can tell its
	// containers from anything else on this machine.
	cgroupRoot = "/tserver-localcluster"
)

// cniBinDirs are where Debian's containernetworking-plugins (and upstream's tarball) put the
// CNI plugins.
var cniBinDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// RealNodeSupport says why this machine cannot run a real node, or nil when it can: it needs
// Linux with cgroup v1, root, the kubelet in binDir and, on PATH, containerd, ctr, runc, ip and
// iptables, the bridge, host-local and loopback CNI plugins, and no other cluster running one.
func RealNodeSupport(binDir string) error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, fmt.Sprintf("root (this runs as uid %d; containers, mounts, cgroups and the "+
			"network bridge need it)", os.Geteuid()))
	}
	if _, err := os.Stat(filepath.Join(binDir, "kubelet")); err != nil {
		missing = append(missing, "the kubelet in "+binDir+" (`make kube-binaries` builds it)")
	}
	for _, cmd := range []string{"containerd", "ctr", "runc", "ip", "iptables"} {
		if _, err := exec.LookPath(cmd); err != nil {
			missing = append(missing, cmd+" on PATH")
		}
	}
	if cniBinDir() == "" {
		missing = append(missing, "the bridge, host-local and loopback CNI plugins in "+strings.Join(cniBinDirs, " or "))
	}
	if err := realNodeOS(); err != nil {
		missing = append(missing, err.Error())
	}
	if len(missing) == 0 {
		if err := realNodeFree(); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("a real node needs %s (`make real-node-deps` installs Debian's containerd, runc, "+
			"containernetworking-plugins and iptables)", strings.Join(missing, "; "))
	}
	return nil
}

// cniBinDir is the first of cniBinDirs with the plugins the real node uses, or "".
func cniBinDir() string {
	for _, dir := range cniBinDirs {
		ok := true
		for _, plugin := range []string{"bridge", "host-local", "loopback"} {
			if _, err := os.Stat(filepath.Join(dir, plugin)); err != nil {
				ok = false
			}
		}
		if ok {
			return dir
		}
	}
	return ""
}

// RealNodeName is the name of the real node, or "" when the cluster has none.
func (c *Cluster) RealNodeName() string {
	if c.realNode == nil {
		return ""
	}
	return c.realNode.Name
}

// realNodeDir holds everything of the real node: its host root (HostRoot, which it sees at
// ProductionHostRoot), containerd's and the kubelet's state, its CNI configuration and IP addresses.
func (c *Cluster) realNodeDir(name string) string { return filepath.Join(c.StateDir, "nodes", name) }

// Cordon marks node unschedulable (true) or schedulable again (false), as kubectl cordon and
// uncordon do. The real node starts cordoned: only the pods meant for it (DaemonSets', and those
// of tests that uncordon it) run there, since other pods' images are not on it.
func (c *Cluster) Cordon(ctx context.Context, node string, cordoned bool) error {
	return c.cl.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, client.RawPatch(types.MergePatchType,
		fmt.Appendf(nil, `{"spec":{"unschedulable":%t}}`, cordoned)))
}

// DeployAgent creates, from manifest (config/default rendered by kustomize, or the chart by helm
// template), the agent DaemonSet and what it runs with: its namespace, service account, role and
// binding, and the node restriction policy with its binding. The DaemonSet runs image (never
// pulled: it was imported) with extraArgs added and keeps to the real node (simulated nodes run
// their agents as processes); all else is as rendered. The cluster must have a real node.
func (c *Cluster) DeployAgent(ctx context.Context, manifest, image string, extraArgs ...string) error {
	if c.realNode == nil {
		return errors.New("deploying the agent DaemonSet: the cluster has no real node")
	}
	objs, err := readObjects(manifest)
	if err != nil {
		return err
	}
	var created []string
	for _, obj := range objs {
		kind, name := obj.GetKind(), obj.GetName()
		switch {
		case kind == "Namespace":
		case kind == "DaemonSet":
			if err := realNodeDaemonSet(obj, image, extraArgs); err != nil {
				return err
			}
		case slices.Contains([]string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
			"ValidatingAdmissionPolicyBinding"}, kind) && strings.Contains(name, "agent"):
		default:
			continue
		}
		if err := c.cl.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating %s %s of %s: %w", kind, name, manifest, err)
		}
		created = append(created, kind+"/"+name)
	}
	if !slices.ContainsFunc(created, func(s string) bool { return strings.HasPrefix(s, "DaemonSet/") }) {
		return fmt.Errorf("%s has no DaemonSet", manifest)
	}
	return nil
}

// realNodeDaemonSet changes the agent DaemonSet obj as DeployAgent says.
func realNodeDaemonSet(obj *unstructured.Unstructured, image string, extraArgs []string) error {
	ds := &appsv1.DaemonSet{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, ds); err != nil {
		return err
	}
	spec := &ds.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		return fmt.Errorf("the agent DaemonSet %s has %d containers, not 1", ds.Name, len(spec.Containers))
	}
	agent := &spec.Containers[0]
	agent.Image, agent.ImagePullPolicy = image, corev1.PullNever
	agent.Args = append(agent.Args, extraArgs...)
	onReal := corev1.NodeSelectorRequirement{Key: RealNodeLabel, Operator: corev1.NodeSelectorOpExists}
	if spec.Affinity == nil {
		spec.Affinity = &corev1.Affinity{}
	}
	if spec.Affinity.NodeAffinity == nil {
		spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	required := spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	if required == nil {
		required = &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{}}}
		spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = required
	}
	for i := range required.NodeSelectorTerms {
		required.NodeSelectorTerms[i].MatchExpressions = append(required.NodeSelectorTerms[i].MatchExpressions, onReal)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ds)
	if err != nil {
		return err
	}
	obj.Object = u
	return nil
}
