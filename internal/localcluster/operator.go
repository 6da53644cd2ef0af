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
	"slices"
	"strconv"
	"time"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// ProductionHostRoot is the host root agents write into volumes, as on a real node.
const ProductionHostRoot = tarsv1beta1.DefaultHostRoot

// StartManager runs the manager binary against the cluster, serving the
// webhooks the API server calls, and waits until it is ready. From then on it is supervised:
// started again whenever it exits by itself.
func (c *Cluster) StartManager(ctx context.Context, binary string, echo io.Writer,
	extraArgs ...string) (*Process, error) {
	probePort, pprofAddr, err := operatorPorts()
	if err != nil {
		return nil, err
	}
	p, err := c.StartProcess("manager", binary, append([]string{
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
	if err := c.waitProcessReady(ctx, p, probePort); err != nil {
		return nil, err
	}
	p.Supervise()
	return p, nil
}

// StartAgents runs the agent binary once per simulated node (but those powered off), each writing
// volume paths under ProductionHostRoot while its directories live under HostRoot(node), the
// way a DaemonSet pod sees its hostPath mount; and waits until they are ready. Each is then
// supervised, as the kubelet restarts a DaemonSet's pod, until its node is powered off. AddNodes
// and PowerOn start further agents with the same binary and extraArgs.
func (c *Cluster) StartAgents(ctx context.Context, binary string, extraArgs ...string) ([]*Process, error) {
	c.power.Lock()
	defer c.power.Unlock()
	c.mu.Lock()
	c.agentBinary, c.agentArgs = binary, slices.Clone(extraArgs)
	nodes := slices.Clone(c.Nodes)
	c.mu.Unlock()
	agents := make([]*Process, 0, len(nodes))
	for _, n := range nodes {
		p, err := c.startAgent(ctx, n.Name)
		if err != nil {
			return nil, err
		}
		if p != nil {
			agents = append(agents, p)
		}
	}
	return agents, nil
}

// Agent is the agent running for node, or nil: before StartAgents, or while node is powered off.
func (c *Cluster) Agent(node string) *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.agents[node]
}

// startAgent starts node's agent as StartAgents was asked to, unless it runs already, StartAgents
// has not run or node is powered off (then it returns nil), and waits until it is ready.
func (c *Cluster) startAgent(ctx context.Context, node string) (*Process, error) {
	c.mu.Lock()
	binary, running, off := c.agentBinary, c.agents[node], c.off[node]
	args := append(slices.Clone(c.agentArgs), c.nodeAgentArgs[node]...)
	c.mu.Unlock()
	if binary == "" || off {
		return nil, nil
	}
	if running != nil {
		select {
		case <-running.Exited():
		default:
			return running, nil
		}
	}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	probePort := ports[0]
	pprofAddr, metricsAddr := "127.0.0.1:"+strconv.Itoa(ports[1]), "127.0.0.1:"+strconv.Itoa(ports[2])
	p, err := c.StartProcess("agent-"+node, binary, append([]string{
		"--kubeconfig=" + c.KubeconfigPath,
		"--node-name=" + node,
		"--host-root=" + ProductionHostRoot,
		"--host-root-mount=" + c.HostRoot(node),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--pprof-bind-address=" + pprofAddr,
		"--metrics-bind-address=" + metricsAddr,
	}, args...), nil, nil)
	if err != nil {
		return nil, err
	}
	p.PprofAddr, p.MetricsAddr = pprofAddr, metricsAddr
	c.mu.Lock()
	c.agents[node] = p
	c.mu.Unlock()
	if err := c.waitProcessReady(ctx, p, probePort); err != nil {
		c.stopAgent(node)
		return nil, err
	}
	p.Supervise()
	return p, nil
}

// RestartAgent stops node's agent, as a power cut would, and starts it again with nodeArgs after
// StartAgents' extraArgs (of a flag given twice, the later wins), and waits until it is ready;
// node's agent keeps nodeArgs, through crashes and power cycles, until the next RestartAgent.
func (c *Cluster) RestartAgent(ctx context.Context, node string, nodeArgs ...string) (*Process, error) {
	c.power.Lock()
	defer c.power.Unlock()
	c.mu.Lock()
	c.nodeAgentArgs[node] = slices.Clone(nodeArgs)
	c.mu.Unlock()
	c.stopAgent(node)
	return c.startAgent(ctx, node)
}

// stopAgent kills node's agent, if one runs, as a power cut would.
func (c *Cluster) stopAgent(node string) {
	c.mu.Lock()
	p := c.agents[node]
	delete(c.agents, node)
	c.processes = slices.DeleteFunc(c.processes, func(q *Process) bool { return q == p })
	c.mu.Unlock()
	if p != nil {
		p.kill()
	}
}

// operatorPorts picks the health probe port and the pprof address of an operator process.
func operatorPorts() (probePort int, pprofAddr string, err error) {
	ports, err := FreePorts(2)
	if err != nil {
		return 0, "", err
	}
	return ports[0], "127.0.0.1:" + strconv.Itoa(ports[1]), nil
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
