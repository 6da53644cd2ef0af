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
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// kwokNodeAnnotation marks the nodes kwok simulates.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// kwokStages are the lifecycles kwok plays: nodes become and stay Ready; pods start, become
// ready, and go when deleted. Volume stages are left out: the real PV binder binds. The node
// stages are played only on nodes that are not powered off, and pods deleted with no grace period
// are left to the API server (stageTerms).
var kwokStages = []string{
	"node/fast/node-initialize.yaml",
	"node/heartbeat/node-heartbeat.yaml",
	"pod/fast/pod-ready.yaml",
	"pod/fast/pod-complete.yaml",
	"pod/fast/pod-delete.yaml",
}

// nodeReadyTimeout bounds the wait for registered or powered-on nodes to become Ready.
const nodeReadyTimeout = 2 * time.Minute

// Node is a simulated node.
type Node struct {
	// Name is the node's name and its kubernetes.io/hostname label.
	Name string
	// Labels are further labels.
	Labels map[string]string
}

// TarsNodes are n simulated nodes, node-1 to node-n, labelled tars.io/node (where the agent
// DaemonSet runs) and tars.io/SupportLocalVolume (where data volumes may live), as `make run`,
// the bench and the chaos runs have them.
func TarsNodes(n int) []Node {
	nodes := make([]Node, 0, n)
	for i := range n {
		nodes = append(nodes, Node{Name: fmt.Sprintf("node-%d", i+1), Labels: map[string]string{
			"tars.io/node": "true", tarsv1beta1.LabelSupportLocalVolume: "true",
		}})
	}
	return nodes
}

// HostRoot is where the host root of node lives on this machine: StateDir/nodes/<node>/host-mount.
func (c *Cluster) HostRoot(node string) string {
	return filepath.Join(c.StateDir, "nodes", node, "host-mount")
}

// NodeManifest is a file with node's Node object as it was registered (name, labels, kwok's
// annotation): `kubectl create -f` on it brings a deleted node back with the same name.
func (c *Cluster) NodeManifest(node string) string {
	return filepath.Join(c.StateDir, "nodes", node, "node.yaml")
}

// startNodes starts kube-controller-manager (every controller: StatefulSet, PV binder, garbage
// collector, node lifecycle...) with kcmFlags added, kube-scheduler with schedulerFlags added and
// kwok, and registers the simulated nodes.
func (c *Cluster) startNodes(ctx context.Context, binDir string, nodes []Node,
	kcmFlags, schedulerFlags []string) error {
	caFile := filepath.Join(c.StateDir, "pki", "ca.crt")
	if err := os.WriteFile(caFile, c.Config.CAData, 0o600); err != nil {
		return err
	}
	ports, err := FreePorts(2)
	if err != nil {
		return err
	}
	kcmPort, schedPort := ports[0], ports[1]
	c.SecurePorts = map[string]int{"kube-controller-manager": kcmPort, "kube-scheduler": schedPort}
	kubeconfig := "--kubeconfig=" + c.KubeconfigPath
	common := []string{kubeconfig, "--authentication-kubeconfig=" + c.KubeconfigPath,
		"--authorization-kubeconfig=" + c.KubeconfigPath, "--leader-elect=false", "--bind-address=127.0.0.1"}
	kcmArgs := slices.Concat(common, []string{
		"--secure-port=" + strconv.Itoa(kcmPort),
		"--controllers=*",
		"--root-ca-file=" + caFile,
		"--service-account-private-key-file=" + filepath.Join(c.StateDir, "pki", "sa-signer.key"),
		"--use-service-account-credentials=false",
		"--kube-api-qps=" + strconv.Itoa(ControllerManagerQPS), "--kube-api-burst=" + strconv.Itoa(2*ControllerManagerQPS),
	}, kcmFlags)
	kcm, err := c.StartProcess("kube-controller-manager", filepath.Join(binDir, "kube-controller-manager"),
		kcmArgs, nil, nil)
	if err != nil {
		return err
	}
	scheduler, err := c.StartProcess("kube-scheduler", filepath.Join(binDir, "kube-scheduler"), slices.Concat(common,
		[]string{"--secure-port=" + strconv.Itoa(schedPort)}, schedulerFlags), nil, nil)
	if err != nil {
		return err
	}
	// kwok watches nodes with a label selector the API server applies, so that labelling a node
	// PowerLabel=off reaches kwok as the node's deletion: it drops the node, stops renewing its
	// lease and leaves its pods alone, as if the machine had died. Its nodes hold leases, as
	// kubelets do (renewed every quarter of their duration, kubelet's default); without, only
	// the status heartbeat (every 20 to 25 s) would tell kube-controller-manager a node lives.
	kwokArgs := []string{kubeconfig,
		"--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--manage-nodes-with-label-selector=" + PowerLabel + "!=" + PoweredOff,
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16", "--node-ip=127.0.0.1"}
	configs, err := writeKwokStages(binDir, filepath.Join(c.StateDir, "kwok-stages"))
	if err != nil {
		return err
	}
	for _, config := range configs {
		kwokArgs = append(kwokArgs, "--config="+config)
	}
	kwok, err := c.StartProcess("kwok", filepath.Join(binDir, "kwok"), kwokArgs, nil, nil)
	if err != nil {
		return err
	}

	if c.cl, err = client.New(c.Config, client.Options{}); err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for name, port := range c.SecurePorts {
		if err := waitHealthy(waitCtx, port); err != nil {
			return fmt.Errorf("%s did not become healthy (log in %s): %w", name, c.LogDir, err)
		}
	}
	// Static pods, for a kubelet: restarted when they exit.
	for _, p := range []*Process{kcm, scheduler, kwok} {
		p.Supervise()
	}
	return c.AddNodes(ctx, nodes...)
}

// writeKwokStages writes the stages kwok plays into dir: kwokStages, those of stageTerms with
// their term, and podReadyAgainStage. It returns their files.
func writeKwokStages(binDir, dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	files := make([]string, 0, len(kwokStages)+1)
	for _, stage := range kwokStages {
		path := filepath.Join(binDir, "kwok-stages", stage)
		if term, ok := stageTerms[stage]; ok {
			src := path
			path = filepath.Join(dir, filepath.Base(stage))
			if err := writeStage(src, path, term); err != nil {
				return nil, err
			}
		}
		files = append(files, path)
	}
	readyAgain := filepath.Join(dir, "pod-ready-again.yaml")
	if err := os.WriteFile(readyAgain, []byte(podReadyAgainStage), 0o600); err != nil {
		return nil, err
	}
	return append(files, readyAgain), nil
}

// stageTerms are the selector terms writeStage adds to some of kwok's stages.
var stageTerms = map[string]map[string]any{
	// kwok forgets a node when it is powered off, but a heartbeat it is playing at that moment
	// queues the next one; the term ends that chain.
	"node/fast/node-initialize.yaml":     notPoweredOff,
	"node/heartbeat/node-heartbeat.yaml": notPoweredOff,
	// A pod deleted with no grace period (a kubelet's last delete, kwok's own, a forced one) is
	// deleted by the API server right after it is marked: kwok's delete, by name, would come
	// later and hit the StatefulSet's new pod of the same name, whose marking comes back to kwok,
	// and so on (hundreds of pods deleted again and again for minutes after a whole-fleet delete).
	// A delete cut between the mark and the removal (the API server killed) leaves the pod
	// marked: its deleter deletes it again (the manager's node-loss handling does, on requeue).
	"pod/fast/pod-delete.yaml": {
		"key": ".metadata.deletionGracePeriodSeconds | tostring", "operator": "NotIn", "values": []any{"0"},
	},
}

// notPoweredOff selects the nodes not labelled PowerLabel=off.
var notPoweredOff = map[string]any{
	"key": fmt.Sprintf(".metadata.labels[%q]", PowerLabel), "operator": "NotIn", "values": []any{PoweredOff},
}

// writeStage writes kwok's stage src to dst with one more selector term.
func writeStage(src, dst string, term map[string]any) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	stage := map[string]any{}
	if err := yaml.Unmarshal(data, &stage); err != nil {
		return fmt.Errorf("reading kwok stage %s: %w", src, err)
	}
	path := []string{"spec", "selector", "matchExpressions"}
	terms, _, err := unstructured.NestedSlice(stage, path...)
	if err != nil {
		return fmt.Errorf("reading kwok stage %s: %w", src, err)
	}
	terms = append(terms, term) // SetNestedSlice copies it
	if err := unstructured.SetNestedSlice(stage, terms, path...); err != nil {
		return err
	}
	if data, err = yaml.Marshal(stage); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o600)
}

// podReadyAgainStage has kwok make Ready again the running pods of a node powered on again, as a
// kubelet reports its containers when it is back; kube-controller-manager marked them not Ready
// when the node went NotReady, and kwok's own stages make Ready only pods that are Pending.
const podReadyAgainStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready-again
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values: ['True']
  next:
    statusTemplate: |
      conditions:
      - lastTransitionTime: {{ Now | Quote }}
        status: "True"
        type: Ready
`

// AddNodes registers further simulated nodes, as Start does those of Options.Nodes, and waits
// until they are Ready; once StartAgents has run, it starts their agents too, with the same
// binary and arguments. The cluster must have been started with nodes (kwok runs then).
func (c *Cluster) AddNodes(ctx context.Context, nodes ...Node) error {
	c.power.Lock()
	defer c.power.Unlock()
	if c.cl == nil {
		return fmt.Errorf("adding nodes: the cluster was started without nodes, so kwok does not run")
	}
	for _, n := range nodes {
		if _, ok := c.node(n.Name); ok {
			return fmt.Errorf("adding node %s: the cluster has it already", n.Name)
		}
		if err := c.registerNode(ctx, n); err != nil {
			return err
		}
		c.mu.Lock()
		c.Nodes = append(c.Nodes, n)
		c.mu.Unlock()
	}
	waitCtx, cancel := context.WithTimeout(ctx, nodeReadyTimeout)
	defer cancel()
	for _, n := range nodes {
		if err := c.waitNodeReady(waitCtx, n); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if _, err := c.startAgent(ctx, n.Name); err != nil {
			return err
		}
	}
	return nil
}

// registerNode makes n's host root and its manifest (NodeManifest), and creates its Node object,
// which kwok then makes Ready.
func (c *Cluster) registerNode(ctx context.Context, n Node) error {
	if err := os.MkdirAll(c.HostRoot(n.Name), 0o755); err != nil {
		return err
	}
	node := nodeObject(n)
	manifest, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "Node", "metadata": map[string]any{
		"name": node.Name, "labels": node.Labels, "annotations": node.Annotations,
	}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.NodeManifest(n.Name), manifest, 0o644); err != nil { //nolint:gosec // kubectl reads it
		return err
	}
	if err := c.cl.Create(ctx, node); err != nil {
		return fmt.Errorf("registering node %s: %w", n.Name, err)
	}
	return nil
}

// nodeObject is the Node object n is registered with: named n.Name, labelled with
// kubernetes.io/hostname, type=kwok and n.Labels, and annotated for kwok to simulate it.
func nodeObject(n Node) *corev1.Node {
	labels := map[string]string{corev1.LabelHostname: n.Name, "type": "kwok"}
	maps.Copy(labels, n.Labels)
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: n.Name, Labels: labels, Annotations: map[string]string{kwokNodeAnnotation: "fake"},
	}}
}

// waitNodeReady waits until n is Ready, and meanwhile makes sure that it is registered and not
// labelled PowerLabel: a node deleted while powered off comes back with the same name and labels.
func (c *Cluster) waitNodeReady(ctx context.Context, n Node) error {
	var lastErr error
	err := poll(ctx, func() bool {
		node := &corev1.Node{}
		lastErr = c.cl.Get(ctx, client.ObjectKey{Name: n.Name}, node)
		switch {
		case apierrors.IsNotFound(lastErr):
			lastErr = c.cl.Create(ctx, nodeObject(n))
			return false
		case lastErr != nil:
			return false
		case node.Labels[PowerLabel] != "":
			lastErr = c.cl.Patch(ctx, node, client.RawPatch(types.MergePatchType,
				fmt.Appendf(nil, `{"metadata":{"labels":{%q:null}}}`, PowerLabel)))
			return false
		}
		return nodeReady(node)
	})
	if err != nil {
		return fmt.Errorf("node %s did not become Ready (kwok's log in %s): %w", n.Name, c.LogDir, errors.Join(err, lastErr))
	}
	return nil
}

// node is the simulated node named name.
func (c *Cluster) node(name string) (Node, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := slices.IndexFunc(c.Nodes, func(n Node) bool { return n.Name == name })
	if i < 0 {
		return Node{}, false
	}
	return c.Nodes[i], true
}

// ControllerManagerQPS is kube-controller-manager's client rate limit in the local cluster.
const ControllerManagerQPS = 100

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitHealthy waits until a component answers /healthz on its secure port on localhost.
func waitHealthy(ctx context.Context, port int) error {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a self-signed local component
	}}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	return poll(ctx, func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}
