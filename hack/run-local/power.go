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

package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

// powerSwitch lets kubectl users lose a simulated node and bring it back: a node labelled
// localcluster.PowerLabel=off, or whose Node is deleted, is powered off (its agent killed; kwok
// stops simulating a labelled node by itself); removing the label, or creating the Node again,
// powers it on (kwok simulates it again, its agent restarts).
type powerSwitch struct {
	cluster *localcluster.Cluster
	// on is the power state last applied to each simulated node.
	on map[string]bool
	// args are the agent flags last applied to each node (AgentArgsAnnotation).
	args map[string]string
	// watch watches an agent the switch restarted.
	watch func(*localcluster.Process)
}

// startPowerSwitch watches Nodes and powers the cluster's simulated nodes off and on as they are
// labelled, deleted and created; stop stops it and waits for the switch in progress.
func startPowerSwitch(ctx context.Context, c *localcluster.Cluster,
	watch func(*localcluster.Process)) (stop func(), err error) {
	s := &powerSwitch{cluster: c, on: map[string]bool{}, args: map[string]string{}, watch: watch}
	for _, n := range c.Nodes {
		s.on[n.Name] = true
	}
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		return func() {}, err
	}
	factory := informers.NewSharedInformerFactory(cs, 0)
	_, err = factory.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { s.sync(ctx, obj, false) },
		UpdateFunc: func(_, obj any) { s.sync(ctx, obj, false) },
		DeleteFunc: func(obj any) { s.sync(ctx, obj, true) },
	})
	if err != nil {
		return func() {}, err
	}
	factory.StartWithContext(ctx)
	return factory.Shutdown, nil
}

// sync powers the node of obj (a Node, or a deleted one) off or on when its state changed.
func (s *powerSwitch) sync(ctx context.Context, obj any, deleted bool) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	node, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	on := !deleted && node.Labels[localcluster.PowerLabel] != localcluster.PoweredOff
	was, known := s.on[node.Name]
	if !known {
		return
	}
	if args := node.Annotations[localcluster.AgentArgsAnnotation]; on && was && args != s.args[node.Name] {
		s.args[node.Name] = args
		s.restartAgent(ctx, node.Name, args)
	}
	if was == on {
		return
	}
	s.on[node.Name] = on
	if !on {
		if err := s.cluster.PowerOff(ctx, node.Name); err != nil && ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "Error: powering off node %s: %v\n", node.Name, err)
			return
		}
		how := "labelled " + localcluster.PowerLabel + "=" + localcluster.PoweredOff
		if deleted {
			how = "deleted"
		}
		fmt.Printf("Powered off node %s (%s): agent stopped, no more heartbeats\n", node.Name, how)
		return
	}
	if err := s.cluster.PowerOn(ctx, node.Name); err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "Error: powering on node %s: %v\n", node.Name, err)
		}
		return
	}
	if p := s.cluster.Agent(node.Name); p != nil {
		s.watch(p)
	}
	fmt.Printf("Powered on node %s: Ready, agent running\n", node.Name)
}

// restartAgent restarts node's agent with args after the cluster's flags.
func (s *powerSwitch) restartAgent(ctx context.Context, node, args string) {
	p, err := s.cluster.RestartAgent(ctx, node, strings.Fields(args)...)
	if err != nil {
		if ctx.Err() == nil {
			fmt.Fprintf(os.Stderr, "Error: restarting the agent of node %s with %q: %v\n", node, args, err)
		}
		return
	}
	if p != nil {
		s.watch(p)
	}
	fmt.Printf("Restarted the agent of node %s with %q (annotation %s)\n", node, args,
		localcluster.AgentArgsAnnotation)
}
