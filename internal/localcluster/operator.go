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
	"fmt"
	"io"
	"strconv"
	"time"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// ProductionHostRoot is the host root agents write into volumes, as on a real node.
const ProductionHostRoot = tarsv1beta1.DefaultHostRoot

// StartManager runs the operator binary's manager role against the cluster, serving the
// webhooks the API server calls, and waits until it is ready.
func (c *Cluster) StartManager(ctx context.Context, binary string, echo io.Writer, extraArgs ...string) (*Process, error) {
	probePort, pprofAddr, err := operatorPorts()
	if err != nil {
		return nil, err
	}
	p, err := c.StartProcess("manager", binary, append([]string{
		"manager",
		"--kubeconfig=" + c.KubeconfigPath,
		"--webhook-cert-path=" + c.Webhook.CertDir,
		"--webhook-port=" + strconv.Itoa(c.Webhook.Port),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--pprof-bind-address=" + pprofAddr,
		"--metrics-bind-address=0",
	}, extraArgs...), nil, echo)
	if err != nil {
		return nil, err
	}
	p.PprofAddr = pprofAddr
	return p, c.waitProcessReady(ctx, p, probePort)
}

// StartAgents runs the agent binary once per simulated node, each writing
// volume paths under ProductionHostRoot while its directories live under HostRoot(node), the
// way a DaemonSet pod sees its hostPath mount; and waits until they are ready.
func (c *Cluster) StartAgents(ctx context.Context, binary string, extraArgs ...string) ([]*Process, error) {
	agents := make([]*Process, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		probePort, pprofAddr, err := operatorPorts()
		if err != nil {
			return nil, err
		}
		p, err := c.StartProcess("agent-"+n.Name, binary, append([]string{
			"--kubeconfig=" + c.KubeconfigPath,
			"--node-name=" + n.Name,
			"--host-root=" + ProductionHostRoot,
			"--host-root-mount=" + c.HostRoot(n.Name),
			"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
			"--pprof-bind-address=" + pprofAddr,
			"--metrics-bind-address=0",
		}, extraArgs...), nil, nil)
		if err != nil {
			return nil, err
		}
		p.PprofAddr = pprofAddr
		if err := c.waitProcessReady(ctx, p, probePort); err != nil {
			return nil, err
		}
		agents = append(agents, p)
	}
	return agents, nil
}

// operatorPorts picks the health probe port and the pprof address of an operator process.
func operatorPorts() (probePort int, pprofAddr string, err error) {
	if probePort, err = FreePort(); err != nil {
		return 0, "", err
	}
	pprofPort, err := FreePort()
	if err != nil {
		return 0, "", err
	}
	return probePort, "127.0.0.1:" + strconv.Itoa(pprofPort), nil
}

// waitProcessReady waits for p's /readyz, or fails when p exits first.
func (c *Cluster) waitProcessReady(ctx context.Context, p *Process, probePort int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ready := make(chan error, 1)
	go func() { ready <- WaitForReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort)) }()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("%s did not become ready (log: %s): %w", p.Name, p.LogPath, err)
		}
		return nil
	case <-p.Exited():
		return fmt.Errorf("%s exited: %v (log: %s)", p.Name, p.Err(), p.LogPath)
	}
}
