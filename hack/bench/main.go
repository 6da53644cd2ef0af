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

// Command bench is what `make bench` runs: on one local cluster (internal/localcluster), it
// measures, each against its lower bound, the time until every claim is bound and every pod
// runs, the volumes left per bound claim, the agents' footprint, and admission latency; on a
// cluster of its own, the time a replica takes to run elsewhere once its Node is deleted
// (recovery.go); and prints a table and JSON.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

type options struct {
	binDir, operator, stateDir  string
	agent                       string
	nodes, servers, replicas    int
	pairs                       int
	volumes, unrelated, creates int
	gcGrace                     time.Duration
	admissionRate               float64
	admissionRounds             int
	jsonOut, profileDir         string
	profileFor                  time.Duration
	// selected are the names of the scenarios to run (the scenarios table).
	selected map[string]bool
	// byHand applies the controller's StatefulSets and Services in the measured runs too, instead
	// of TServers: what the agents cost, without the TServers and the controller's work.
	byHand bool
	// tracePV has kube-controller-manager's PV controller log every step, and the bench print how
	// it spent each run.
	tracePV bool
	// The recovery scenario runs on a cluster of its own, of recoveryNodes nodes, in
	// recoveryPairs pairs, with the manager's --node-loss-grace nodeLossGrace.
	recoveryNodes, recoveryPairs int
	// usageFiles is how many files the usage scenario's volume holds.
	usageFiles    int
	nodeLossGrace time.Duration
	// The scale scenario's cluster has scaleNodes nodes and its fleet scaleServers TServers; its
	// footprint is compared with the same load per node on scaleSmallNodes nodes.
	scaleNodes, scaleServers, scaleSmallNodes int
	// scaleNoWork adds to the scale scenario, after its restarts, a rollout on Kubernetes with a
	// provisioner of no work.
	scaleNoWork bool
	// scaleKeepOperator keeps the manager and the agents running through the operator's restarts
	// of the scale scenario, rather than kill them as its pods are deleted.
	scaleKeepOperator bool
	// schedulerQPS, if not 0, is kube-scheduler's client rate limit in every cluster of the bench.
	schedulerQPS int
}

// scenario is one of the bench's measurements: run on the cluster the scenarios share (run), in
// the order of scenarios, or alone on a cluster of its own once that one is stopped.
type scenario struct {
	name, about string
	// title is printed as it starts; "" when it prints its own steps.
	title  string
	shared func(b *bench, ctx context.Context) ([]result, error)
	alone  func(ctx context.Context, o options) ([]result, error)
	// optIn scenarios run only when named, not with all.
	optIn bool
}

// scenarios are the bench's scenarios, in the order they run. To add one, write it in a file of
// its own and list it here.
var scenarios = []scenario{
	// First, on the fresh cluster: after scenario 3's 10,000 objects it is quiet only for a while.
	{name: "writes", about: "5, the CPU cost of a TServer status write",
		title: "Scenario 5: CPU cost of a TServer status write", shared: (*bench).writeCost},
	{name: "bound", about: "1 to 3, which measure the same runs: time to bound, leftovers, agent footprint",
		shared: (*bench).bound},
	// Last on the shared cluster: its thousands of TServers are left to the cluster's end, since
	// deleting them takes the controller-manager's garbage collector minutes that no other
	// scenario should share.
	{name: "admission", about: "4, admission latency", title: "Scenario 4: admission latency",
		shared: (*bench).admission},
	{name: "recovery", about: "6, a replica back on another node after its Node's deletion, on a cluster of its own",
		title: "Scenario 6: node-loss recovery", alone: recovery},
	{name: "usage", about: "7, the agent's CPU and time for one pass over a volume of --usage-files files",
		title: "Scenario 7: measuring a volume's usage", alone: usage},
	{name: "scale", about: "8, --scale-servers TServers on --scale-nodes nodes rolled out and restarted at once, " +
		"and the footprint at that scale, on a cluster of its own (only when named: about 15 minutes)",
		alone: scale, optIn: true},
}

// onShared says whether a scenario selected runs on the shared cluster.
func (o options) onShared() bool {
	return slices.ContainsFunc(scenarios, func(sc scenario) bool { return o.selected[sc.name] && sc.shared != nil })
}

// selectScenarios reads --scenarios: all, or names of scenarios separated by commas.
func selectScenarios(flagValue string) (map[string]bool, error) {
	selected := map[string]bool{}
	for name := range strings.SplitSeq(flagValue, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "all":
			for _, sc := range scenarios {
				selected[sc.name] = selected[sc.name] || !sc.optIn
			}
		case slices.ContainsFunc(scenarios, func(sc scenario) bool { return sc.name == name }):
			selected[name] = true
		default:
			names := make([]string, 0, len(scenarios))
			for _, sc := range scenarios {
				names = append(names, sc.name)
			}
			return nil, fmt.Errorf("--scenarios must be all or some of %s, not %q", strings.Join(names, ", "), name)
		}
	}
	return selected, nil
}

func main() {
	ctrllog.SetLogger(logr.Discard()) // the observer's cache logs nothing worth the bench's output
	var o options
	flag.StringVar(&o.binDir, "bin-dir", "", "Directory with the Kubernetes binaries.")
	flag.StringVar(&o.operator, "operator", "bin/tserver-operator", "The manager binary.")
	flag.StringVar(&o.agent, "agent", "bin/tserver-agent", "The node agent binary.")
	flag.StringVar(&o.stateDir, "state-dir", ".local/bench", "State and logs of the bench's cluster.")
	flag.IntVar(&o.nodes, "nodes", 10, "M: simulated nodes.")
	flag.IntVar(&o.servers, "servers", 30, "S: TServers (StatefulSets).")
	flag.IntVar(&o.replicas, "replicas", 3, "R: replicas per TServer.")
	flag.IntVar(&o.volumes, "volumes", 2, "V: tLocalVolume mounts per TServer.")
	flag.IntVar(&o.pairs, "pairs", 5, "Runs of scenario 1 with and without the agents; "+
		"the pair with the median ratio counts.")
	flag.IntVar(&o.unrelated, "unrelated", 10000, "Unrelated claims and volumes for the footprint scenario.")
	flag.IntVar(&o.admissionRounds, "admission-rounds", 3, "Rounds of the admission scenario's steady run; "+
		"the round with the median p99 overhead counts.")
	flag.IntVar(&o.creates, "creates", 1000, "TServer creates with the webhooks, and as many without, "+
		"for the admission scenario.")
	flag.Float64Var(&o.admissionRate, "admission-rate", 20, "Creates per second (with and without the webhooks "+
		"together) of the admission scenario's steady run (it also runs them back to back).")
	flag.DurationVar(&o.gcGrace, "gc-grace-period", 15*time.Second, "The agents' grace period (short for the bench).")
	flag.StringVar(&o.profileDir, "profile-dir", "", "If set, CPU profiles of the manager, every agent and the "+
		"API server from the start of the last pair's runs of scenario 1 and of the admission runs are written there "+
		"(go tool pprof <file>).")
	flag.DurationVar(&o.profileFor, "profile-for", 15*time.Second, "How long the profiles of --profile-dir last.")
	flag.BoolVar(&o.byHand, "statefulsets-by-hand", false, "Apply the controller's StatefulSets by hand in the "+
		"measured runs too, not TServers: the agents' share of scenario 1 alone (a diagnosis; the target counts "+
		"TServers).")
	flag.BoolVar(&o.tracePV, "trace-pv-controller", false, "Have kube-controller-manager's PV controller log every step "+
		"(a large log) and print, for each run of scenario 1, how long its writes took (a diagnosis).")
	flag.IntVar(&o.recoveryNodes, "recovery-nodes", 4, "Simulated nodes of the recovery scenario's own cluster "+
		"(a lost node is replaced by a new one after each run).")
	flag.IntVar(&o.recoveryPairs, "recovery-pairs", 3, "Runs of the recovery scenario with the manager and with "+
		"Kubernetes alone; the pair with the median ratio counts.")
	flag.DurationVar(&o.nodeLossGrace, "node-loss-grace", 10*time.Second, "The manager's --node-loss-grace in the "+
		"recovery scenario (short for the bench; subtracted from the measured time).")
	flag.IntVar(&o.usageFiles, "usage-files", 1_000_000, "Files in the volume the usage scenario measures.")
	flag.IntVar(&o.scaleNodes, "scale-nodes", 50, "Simulated nodes of the scale scenario's own cluster.")
	flag.IntVar(&o.scaleServers, "scale-servers", 1000, "TServers (of --replicas replicas and one tLocalVolume) "+
		"of the scale scenario.")
	flag.IntVar(&o.scaleSmallNodes, "scale-small-nodes", 10, "Nodes the scale scenario first runs a fleet on, "+
		"the others cordoned, with as many pods per node as the whole fleet: the agents' RSS is compared with theirs.")
	flag.BoolVar(&o.scaleNoWork, "scale-no-work", false, "Also roll the scale scenario's fleet out on Kubernetes with "+
		"a provisioner of no work, after its restarts (the operator stopped and its fleet deleted first): what the "+
		"operator costs beyond Kubernetes' own protocol of provisioning (a reference, no target; about 7 more minutes).")
	flag.BoolVar(&o.scaleKeepOperator, "scale-keep-operator", false, "Keep the manager and the agents running "+
		"through the scale scenario's restarts with the operator: every pod of the fleet deleted at once while the "+
		"control plane and the operator stay up, rather than the operator killed meanwhile as in a power cut (its "+
		"second restart runs on a manager and agents started again after Kubernetes alone's).")
	flag.IntVar(&o.schedulerQPS, "scheduler-qps", 0, "kube-scheduler's client rate limit, requests a second (its "+
		"burst twice that); 0 leaves its default, 50, behind which its writes queue in a rollout at scale.")
	flag.StringVar(&o.jsonOut, "json", ".local/bench/results.json", "Where to write the results as JSON.")
	names := make([]string, 0, len(scenarios))
	for _, sc := range scenarios {
		names = append(names, sc.name+" ("+sc.about+")")
	}
	chosen := flag.String("scenarios", "all", "Which scenarios to run, comma-separated, or all: "+
		strings.Join(names, ", ")+".")
	flag.Parse()
	var err error
	if o.selected, err = selectScenarios(*chosen); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	switch {
	case o.binDir == "":
		fmt.Fprintln(os.Stderr, "--bin-dir is required")
		os.Exit(2)
	case o.nodes < o.replicas:
		// A node holds one volume of each tLocalVolume of a server: replicas spread one per node.
		fmt.Fprintf(os.Stderr, "--nodes (%d) must be at least --replicas (%d): "+
			"a server's replicas each need a node of their own\n", o.nodes, o.replicas)
		os.Exit(2)
	case o.schedulerQPS < 0:
		fmt.Fprintln(os.Stderr, "--scheduler-qps must not be negative")
		os.Exit(2)
	case o.nodes < 1 || o.servers < 1 || o.replicas < 1 || o.volumes < 1 || o.creates < 1 || o.pairs < 1 ||
		o.admissionRounds < 1 || o.recoveryPairs < 1:
		fmt.Fprintln(os.Stderr, "--nodes, --servers, --replicas, --volumes, --creates, --pairs, --admission-rounds and "+
			"--recovery-pairs must be at least 1")
		os.Exit(2)
	case o.selected["scale"] && (o.scaleSmallNodes < o.replicas || o.scaleNodes <= o.scaleSmallNodes):
		fmt.Fprintf(os.Stderr, "--scale-small-nodes (%d) must be at least --replicas (%d) and less than --scale-nodes (%d)\n",
			o.scaleSmallNodes, o.replicas, o.scaleNodes)
		os.Exit(2)
	case o.selected["scale"] && o.scaleServers*o.scaleSmallNodes/o.scaleNodes < scaleFirstServers:
		fmt.Fprintf(os.Stderr, "--scale-servers (%d) must put at least %d TServers on --scale-small-nodes\n",
			o.scaleServers, scaleFirstServers)
		os.Exit(2)
	case o.recoveryNodes <= recoveryReplicas:
		fmt.Fprintf(os.Stderr, "--recovery-nodes (%d) must be more than the recovery scenario's %d replicas: "+
			"the lost one needs a free node\n", o.recoveryNodes, recoveryReplicas)
		os.Exit(2)
	}
	var results []result
	if o.onShared() {
		results, err = run(context.Background(), o)
	}
	for _, sc := range scenarios {
		if err != nil || !o.selected[sc.name] || sc.alone == nil {
			continue
		}
		// After the shared cluster is stopped: the two would share the two cores.
		if sc.title != "" {
			fmt.Println(sc.title + "...")
		}
		var more []result
		more, err = sc.alone(context.Background(), o)
		results = append(results, more...)
	}
	printTable(o, results)
	if data, jerr := json.MarshalIndent(results, "", "  "); jerr == nil {
		_ = os.WriteFile(o.jsonOut, data, 0o644)
		fmt.Printf("\nJSON: %s\n", o.jsonOut)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) ([]result, error) {
	nodes := localcluster.TarsNodes(o.nodes)
	fmt.Printf("Starting a local cluster with %d nodes (kube-controller-manager QPS %d)...\n",
		o.nodes, localcluster.ControllerManagerQPS)
	opts := clusterOptions(o, o.stateDir, nodes)
	if o.tracePV {
		opts.ControllerManagerFlags = []string{pvControllerVerbosity}
	}
	cluster, err := localcluster.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cluster.Stop() }()
	manager, err := cluster.StartManager(ctx, o.operator, nil)
	if err != nil {
		return nil, err
	}
	c, obs, err := clients(ctx, cluster.Config)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, cluster: cluster, c: c, obs: obs, manager: manager}

	var results []result
	for _, sc := range scenarios {
		if !o.selected[sc.name] || sc.shared == nil {
			continue
		}
		if sc.title != "" {
			fmt.Println(sc.title + "...")
		}
		more, err := sc.shared(b, ctx)
		if results = append(results, more...); err != nil {
			return results, err
		}
	}
	return results, nil
}
