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

// Command run-local is what `make run` runs: a local cluster (internal/localcluster) with
// simulated nodes, the operator's manager serving its webhooks to it, and one node agent per
// node, until Ctrl-C or SIGTERM stops everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

type options struct {
	stateDir   string
	binDir     string
	operator   string
	agent      string
	crdDir     string
	webhookDir string
	manifests  string
	nodes      int
	gcGrace    time.Duration
	agents     bool
	realNodes  int
	imageDir   string
	agentImage string
	deployment string
}

func main() {
	var o options
	flag.StringVar(&o.stateDir, "state-dir", ".local",
		"Directory for the kubeconfig, logs, node directories and cluster state; emptied at start.")
	flag.StringVar(&o.binDir, "bin-dir", "", "Directory with the Kubernetes binaries (`make kube-binaries` builds them).")
	flag.StringVar(&o.operator, "operator", "bin/tserver-operator", "The manager binary.")
	flag.StringVar(&o.agent, "agent", "bin/tserver-agent", "The node agent binary.")
	flag.StringVar(&o.crdDir, "crd-dir", "config/crd/bases", "CustomResourceDefinitions to install.")
	flag.StringVar(&o.webhookDir, "webhook-dir", "config/webhook/manifests.yaml", "Webhook configurations to register.")
	flag.StringVar(&o.manifests, "manifests", "config/storageclass",
		"Further objects to create (comma-separated files or directories).")
	flag.IntVar(&o.nodes, "nodes", 3, "How many simulated nodes to run.")
	flag.DurationVar(&o.gcGrace, "gc-grace-period", 2*time.Minute, "The agents' grace period for unneeded volumes.")
	flag.BoolVar(&o.agents, "agents", true, "Start one node agent per node (false: start them by hand).")
	flag.IntVar(&o.realNodes, "real-nodes", 0,
		"How many real nodes to run (0 or 1): a kubelet with containerd and runc, its agent the DaemonSet.")
	flag.StringVar(&o.imageDir, "image-dir", "bin/images", "The image archives `make images` builds, for the real node.")
	flag.StringVar(&o.agentImage, "agent-image", "localhost/tserver-operator:dev",
		"The operator image of the real node's agent.")
	flag.StringVar(&o.deployment, "deployment", "bin/images/deploy.yaml",
		"config/default rendered by kustomize: the real node's agent DaemonSet and what it runs with.")
	flag.Parse()
	if o.binDir == "" || o.nodes < 1 || o.realNodes < 0 || o.realNodes > 1 {
		fmt.Fprintln(os.Stderr, "--bin-dir is required, --nodes must be at least 1 and --real-nodes 0 or 1")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	start := time.Now()
	nodes := localcluster.TarsNodes(o.nodes)
	fmt.Printf("Starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and %d simulated nodes...\n",
		o.nodes)
	var realNode *localcluster.RealNode
	if o.realNodes > 0 {
		if realNode, err = localcluster.LocalRealNode(o.imageDir); err != nil {
			return err
		}
		fmt.Printf("... and a real node, %s (kubelet, containerd and runc)...\n", realNode.Name)
	}
	cluster, err := localcluster.Start(ctx, localcluster.Options{
		BinaryDir:    o.binDir,
		StateDir:     o.stateDir,
		CRDPaths:     []string{o.crdDir},
		WebhookPaths: []string{o.webhookDir},
		Manifests:    strings.Split(o.manifests, ","),
		Nodes:        nodes,
		RealNode:     realNode,
		// A manager or agent that crashes is started again, and says so here.
		Notices: os.Stdout,
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("Stopping...")
		err = errors.Join(err, cluster.Stop())
		fmt.Println("Stopped.")
	}()

	fmt.Println("Starting the manager (controller and webhooks)...")
	manager, err := cluster.StartManager(ctx, o.operator, os.Stdout)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	exited := make(chan *localcluster.Process)
	// watch reports p on exited if it exits for good by itself: not when stopped, nor when its
	// node is powered off; a crash is only a notice, since the cluster starts it again (unless
	// even that fails).
	watch := func(p *localcluster.Process) {
		go func() {
			<-p.Exited()
			if !p.Stopped() {
				select {
				case exited <- p:
				case <-ctx.Done():
				}
			}
		}()
	}
	watch(manager)
	if o.agents {
		fmt.Printf("Starting %d node agents...\n", o.nodes)
		agents, err := cluster.StartAgents(ctx, o.agent, "--gc-grace-period="+o.gcGrace.String())
		if err != nil {
			cancel()
			return err
		}
		for _, p := range agents {
			watch(p)
		}
	}
	if realNode != nil {
		fmt.Printf("Deploying the agent DaemonSet (%s) onto %s...\n", o.agentImage, realNode.Name)
		if err := cluster.DeployAgent(ctx, o.deployment, o.agentImage, "--gc-grace-period="+o.gcGrace.String()); err != nil {
			cancel()
			return err
		}
	}
	stopSwitch, err := startPowerSwitch(ctx, cluster, watch)
	defer func() {
		cancel()
		stopSwitch()
	}()
	if err != nil {
		return err
	}

	printBanner(cluster, o.agents, time.Since(start))
	select {
	case <-ctx.Done():
		return nil
	case p := <-exited:
		return fmt.Errorf("%s exited: %v (log: %s)", p.Name, p.Err(), relative(p.LogPath))
	}
}

func printBanner(c *localcluster.Cluster, agents bool, took time.Duration) {
	agentLine := "one per node: volumes say " + localcluster.ProductionHostRoot + "/..., directories are"
	if !agents {
		agentLine = "none started (--agents=false); run one per node by hand, e.g.:\n" +
			"                  bin/tserver-agent --kubeconfig " + relative(c.KubeconfigPath) +
			" --node-name node-1 \\\n                    --host-root-mount " + relative(c.HostRoot("node-1")) +
			" --metrics-bind-address 0 --health-probe-bind-address 127.0.0.1:0\n" +
			"                  volumes then say " + localcluster.ProductionHostRoot + "/..., directories are"
	}
	fmt.Printf(`
================================================================================
tserver-operator is running on a local cluster (ready in %s).

  control plane   etcd, kube-apiserver, kube-controller-manager, kube-scheduler
  nodes           %d simulated by kwok (node-1 ... node-%d), labelled tars.io/node
                  and tars.io/SupportLocalVolume; host roots in %s/nodes/<node>/host-mount
  manager         controller and admission webhooks (its log above)
  agents          %s
                  really under %s/nodes/<node>/host-mount/...
  logs            %s/
                  (a manager or agent that exits is started again, as the kubelet
                  would, after 1 s, doubling to 30 s; each restart is printed here)

Try it, in another terminal:

  export KUBECONFIG=%s
  kubectl apply -f config/samples/                  # the seed's tarslog and tarsconfig
  kubectl get ts,sts,pods -o wide                   # pods on the nodes of their volumes
  kubectl get pvc,pv                                # claims Bound, one volume per claim
  kubectl describe ts tars-tarslog                  # conditions and events
  ls -ln %s/nodes/*/host-mount/default/tars.tarslog/   # owned by uid 1000, mode 755
  kubectl apply -f config/samples/invalid/mode-750.yaml  # rejected at admission
%[11]s
Lose a node and bring it back (its agent is killed, kwok stops simulating it); the manager
frees the replicas of a node deleted, or tainted out-of-service while NotReady:

%[10]s

Give a node's agent flags (it restarts with them), e.g. to mark node-1's disk full:

  kubectl annotate node node-1 %[12]s='--min-free-space=100%%'
  kubectl get nodes -L tars.io/DiskFull    # node-1: space; new volumes go to the other nodes
  kubectl annotate node node-1 %[12]s-    # back to the defaults

%[13]sStop with Ctrl-C.
================================================================================
`, took.Round(100*time.Millisecond), len(c.Nodes), len(c.Nodes), relative(c.StateDir),
		agentLine, relative(c.StateDir), relative(c.LogDir), relative(c.KubeconfigPath),
		relative(c.StateDir), powerCommands(c), usageCommand(c), localcluster.AgentArgsAnnotation, realNodeCommands(c))
}

// realNodeCommands try the real node, if the cluster has one.
func realNodeCommands(c *localcluster.Cluster) string {
	node := c.RealNodeName()
	if node == "" {
		return ""
	}
	return fmt.Sprintf(`A real node, %[1]s (kubelet, containerd, runc; cordoned: other servers' images are not
on it), runs the agent DaemonSet of config/default. A server of yours there, writing into its volume:

  kubectl -n tserver-operator-system get pods -o wide   # the agent DaemonSet's pod on %[1]s
  kubectl uncordon %[1]s
  kubectl apply -f config/samples/real-node/volume-writer.yaml
  kubectl logs demo-writer-0                            # run 1 uid=1000 ...; delete the pod: run 2 ... previous=1

`, node)
}

// usageCommand reads node-1's agent's figures of what each bound volume holds, if it runs.
func usageCommand(c *localcluster.Cluster) string {
	p := c.Process("agent-node-1")
	if p == nil || p.MetricsAddr == "" {
		return ""
	}
	return "  curl -s " + p.MetricsAddr + "/metrics | grep tserver_agent_volume_used  # what volumes hold (du -x)\n"
}

// powerCommands are the kubectl commands that power a node off and on, with comments aligned.
func powerCommands(c *localcluster.Cluster) string {
	label := "kubectl label node node-1 " + localcluster.PowerLabel
	rows := [][2]string{
		{label + "=" + localcluster.PoweredOff, "power off: NotReady within a minute"},
		{"kubectl taint node node-1 node.kubernetes.io/out-of-service=nodeshutdown:NoExecute", ""},
		{"kubectl delete node node-1", "or delete it"},
		{label + "-", "power on again, or once deleted:"},
		{"kubectl create -f " + relative(c.NodeManifest("node-1")), "it comes back with the same name"},
	}
	width := 0
	for _, r := range rows {
		if r[1] != "" {
			width = max(width, len(r[0]))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		if r[1] == "" {
			fmt.Fprintf(&b, "  %s\n", r[0])
		} else {
			fmt.Fprintf(&b, "  %-*s  # %s\n", width, r[0], r[1])
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// relative shortens path to one relative to the working directory, as a user would type it.
func relative(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, path); err == nil {
		return rel
	}
	return path
}
