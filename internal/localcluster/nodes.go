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
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// kwokNodeAnnotation marks the nodes kwok simulates.
const kwokNodeAnnotation = "kwok.x-k8s.io/node"

// kwokStages are the lifecycles kwok plays: nodes become and stay Ready; pods start, become
// ready, and go when deleted. Volume stages are left out: the real PV binder binds.
var kwokStages = []string{
	"node/fast/node-initialize.yaml",
	"node/heartbeat/node-heartbeat.yaml",
	"pod/fast/pod-ready.yaml",
	"pod/fast/pod-complete.yaml",
	"pod/fast/pod-delete.yaml",
}

// Node is a simulated node.
type Node struct {
	// Name is the node's name and its kubernetes.io/hostname label.
	Name string
	// Labels are further labels.
	Labels map[string]string
}

// HostRoot is where the host root of node lives on this machine: StateDir/nodes/<node>/host-mount.
func (c *Cluster) HostRoot(node string) string {
	return filepath.Join(c.StateDir, "nodes", node, "host-mount")
}

// startNodes starts kube-controller-manager (every controller: StatefulSet, PV binder, garbage
// collector...) with kcmFlags added, kube-scheduler and kwok, and registers the simulated nodes.
func (c *Cluster) startNodes(ctx context.Context, binDir string, nodes []Node, kcmFlags []string) error {
	caFile := filepath.Join(c.StateDir, "pki", "ca.crt")
	if err := os.WriteFile(caFile, c.Config.CAData, 0o600); err != nil {
		return err
	}
	kcmPort, err := FreePort()
	if err != nil {
		return err
	}
	schedPort, err := FreePort()
	if err != nil {
		return err
	}
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
	if _, err := c.StartProcess("kube-controller-manager", filepath.Join(binDir, "kube-controller-manager"), kcmArgs, nil, nil); err != nil {
		return err
	}
	if _, err := c.StartProcess("kube-scheduler", filepath.Join(binDir, "kube-scheduler"), append(common,
		"--secure-port="+strconv.Itoa(schedPort),
	), nil, nil); err != nil {
		return err
	}
	kwokArgs := []string{kubeconfig, "--manage-nodes-with-annotation-selector=" + kwokNodeAnnotation + "=fake",
		"--cidr=10.244.0.0/16", "--node-ip=127.0.0.1"}
	for _, stage := range kwokStages {
		kwokArgs = append(kwokArgs, "--config="+filepath.Join(binDir, "kwok-stages", stage))
	}
	if _, err := c.StartProcess("kwok", filepath.Join(binDir, "kwok"), kwokArgs, nil, nil); err != nil {
		return err
	}

	cl, err := client.New(c.Config, client.Options{})
	if err != nil {
		return err
	}
	for _, n := range nodes {
		labels := map[string]string{corev1.LabelHostname: n.Name, "type": "kwok"}
		maps.Copy(labels, n.Labels)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
			Name: n.Name, Labels: labels, Annotations: map[string]string{kwokNodeAnnotation: "fake"},
		}}
		if err := cl.Create(ctx, node); err != nil {
			return fmt.Errorf("registering node %s: %w", n.Name, err)
		}
		if err := os.MkdirAll(c.HostRoot(n.Name), 0o755); err != nil {
			return err
		}
	}

	waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for name, port := range map[string]int{"kube-controller-manager": kcmPort, "kube-scheduler": schedPort} {
		if err := waitHealthy(waitCtx, port); err != nil {
			return fmt.Errorf("%s did not become healthy (log in %s): %w", name, c.LogDir, err)
		}
	}
	return poll(waitCtx, func() bool {
		list := &corev1.NodeList{}
		if cl.List(waitCtx, list) != nil || len(list.Items) < len(nodes) {
			return false
		}
		for _, node := range list.Items {
			if !nodeReady(&node) {
				return false
			}
		}
		return true
	})
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
