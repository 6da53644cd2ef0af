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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// PowerLabel set to PoweredOff on a Node powers that simulated node off: kwok stops
	// simulating it (no more lease renewals or status heartbeats, its pods left as they are), so
	// that kube-controller-manager's node lifecycle controller marks it NotReady (Unknown) after
	// its --node-monitor-grace-period, as it does a machine that died. Removing the label powers
	// it on again. PowerOff and PowerOn set and remove it, and also stop and restart its agent.
	PowerLabel = "localcluster.tars.io/power"
	// PoweredOff is the value of PowerLabel on a node powered off.
	PoweredOff = "off"
	// AgentArgsAnnotation on a Node gives its agent flags (space-separated) after the cluster's:
	// `make run` restarts the agent with them when it changes (RestartAgent).
	AgentArgsAnnotation = "localcluster.tars.io/agent-args"
)

// PowerOff powers the simulated node off, like pulling its plug: its agent is killed (SIGKILL,
// no shutdown) and the Node is labelled PowerLabel=off, so that kwok stops renewing its lease
// and posting its status, and leaves its pods as they are. kube-controller-manager then marks the
// Node NotReady by itself after its --node-monitor-grace-period (Options.ControllerManagerFlags).
// The Node object stays; deleting it afterwards is the node being removed for good. PowerOff
// returns without waiting for NotReady; it does nothing more to a node that is off already.
func (c *Cluster) PowerOff(ctx context.Context, node string) error {
	c.power.Lock()
	defer c.power.Unlock()
	if _, ok := c.node(node); !ok {
		return fmt.Errorf("powering off node %s: not a simulated node of the cluster", node)
	}
	c.mu.Lock()
	c.off[node] = true
	c.mu.Unlock()
	c.stopAgent(node)
	if c.cl == nil {
		return nil
	}
	err := c.cl.Patch(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, client.RawPatch(types.MergePatchType,
		fmt.Appendf(nil, `{"metadata":{"labels":{%q:%q}}}`, PowerLabel, PoweredOff)))
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("powering off node %s: %w", node, err)
	}
	return nil
}

// PowerOn powers the simulated node on again, as a machine that boots: the Node loses
// PowerLabel, or is registered again if it was deleted meanwhile (same name, the labels it was
// first registered with), kwok simulates it again, and once it is Ready its agent is restarted
// with the arguments StartAgents was given (when StartAgents has run). It waits until the node is
// Ready and its agent too; on a node that is on already it only starts the agent if none runs.
func (c *Cluster) PowerOn(ctx context.Context, node string) error {
	c.power.Lock()
	defer c.power.Unlock()
	n, ok := c.node(node)
	if !ok {
		return fmt.Errorf("powering on node %s: not a simulated node of the cluster", node)
	}
	if c.cl == nil {
		return fmt.Errorf("powering on node %s: the cluster was started without nodes, so kwok does not run", node)
	}
	waitCtx, cancel := context.WithTimeout(ctx, nodeReadyTimeout)
	defer cancel()
	if err := c.waitNodeReady(waitCtx, n); err != nil {
		return err
	}
	c.mu.Lock()
	delete(c.off, node)
	c.mu.Unlock()
	_, err := c.startAgent(ctx, node)
	return err
}
