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
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/agent"
	"github.com/tserver-operator/tserver-operator/internal/controller"
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
	// timeToBound runs scenarios 1 to 3 (leftovers and footprint are those of scenario 1's
	// runs), admission scenario 4, writeCost scenario 5.
	timeToBound, admission, writeCost bool
	// byHand applies the controller's StatefulSets and Services in the measured runs too, instead
	// of TServers: what the agents cost, without the TServers and the controller's work.
	byHand bool
	// tracePV has kube-controller-manager's PV controller log every step, and the bench print how
	// it spent each run.
	tracePV bool
	// recovery runs scenario 6 (recovery.go) on a cluster of its own, of recoveryNodes nodes, in
	// recoveryPairs pairs, with the manager's --node-loss-grace nodeLossGrace.
	recovery                     bool
	recoveryNodes, recoveryPairs int
	nodeLossGrace                time.Duration
}

const (
	scenarioFootprint = "3 agent footprint"
	scenarioAdmission = "4 admission"
)

// result is one measured figure, with its lower bound and target where it has them.
type result struct {
	Scenario string  `json:"scenario"`
	Metric   string  `json:"metric"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	Bound    float64 `json:"lowerBound,omitempty"`
	Ratio    float64 `json:"ratio,omitempty"`
	Target   string  `json:"target,omitempty"`
	Met      *bool   `json:"met,omitempty"`
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
	flag.IntVar(&o.pairs, "pairs", 5, "Runs of scenario 1 with and without the agents; the pair with the median ratio counts.")
	flag.IntVar(&o.unrelated, "unrelated", 10000, "Unrelated claims and volumes for the footprint scenario.")
	flag.IntVar(&o.admissionRounds, "admission-rounds", 3, "Rounds of the admission scenario's steady run; the round with the median p99 overhead counts.")
	flag.IntVar(&o.creates, "creates", 1000, "TServer creates with the webhooks, and as many without, for the admission scenario.")
	flag.Float64Var(&o.admissionRate, "admission-rate", 20, "Creates per second (with and without the webhooks together) of the admission scenario's steady run "+
		"(it also runs them back to back).")
	flag.DurationVar(&o.gcGrace, "gc-grace-period", 15*time.Second, "The agents' grace period (short for the bench).")
	flag.StringVar(&o.profileDir, "profile-dir", "", "If set, CPU profiles of the manager, every agent and the "+
		"API server from the start of the last pair's runs of scenario 1 and of the admission runs are written there "+
		"(go tool pprof <file>).")
	flag.DurationVar(&o.profileFor, "profile-for", 15*time.Second, "How long the profiles of --profile-dir last.")
	flag.BoolVar(&o.byHand, "statefulsets-by-hand", false, "Apply the controller's StatefulSets by hand in the measured runs "+
		"too, not TServers: the agents' share of scenario 1 alone (a diagnosis; the target counts TServers).")
	flag.BoolVar(&o.tracePV, "trace-pv-controller", false, "Have kube-controller-manager's PV controller log every step "+
		"(a large log) and print, for each run of scenario 1, how long its writes took (a diagnosis).")
	flag.IntVar(&o.recoveryNodes, "recovery-nodes", 4, "Simulated nodes of the recovery scenario's own cluster "+
		"(a lost node is replaced by a new one after each run).")
	flag.IntVar(&o.recoveryPairs, "recovery-pairs", 3, "Runs of the recovery scenario with the manager and with Kubernetes alone; "+
		"the pair with the median ratio counts.")
	flag.DurationVar(&o.nodeLossGrace, "node-loss-grace", 10*time.Second, "The manager's --node-loss-grace in the recovery "+
		"scenario (short for the bench; subtracted from the measured time).")
	flag.StringVar(&o.jsonOut, "json", ".local/bench/results.json", "Where to write the results as JSON.")
	scenarios := flag.String("scenarios", "all", "Which scenarios to run: all, bound (1 to 3, which measure the same runs), "+
		"admission (4), writes (5, the CPU cost of a TServer status write) or recovery (6, a replica back on another node "+
		"after its Node's deletion, on a cluster of its own).")
	flag.Parse()
	switch *scenarios {
	case "all":
		o.timeToBound, o.admission, o.writeCost, o.recovery = true, true, true, true
	case "bound":
		o.timeToBound = true
	case "admission":
		o.admission = true
	case "writes":
		o.writeCost = true
	case "recovery":
		o.recovery = true
	default:
		fmt.Fprintf(os.Stderr, "--scenarios must be all, bound, admission, writes or recovery, not %q\n", *scenarios)
		os.Exit(2)
	}
	switch {
	case o.binDir == "":
		fmt.Fprintln(os.Stderr, "--bin-dir is required")
		os.Exit(2)
	case o.nodes < o.replicas:
		// A node holds one volume of each tLocalVolume of a server: replicas spread one per node.
		fmt.Fprintf(os.Stderr, "--nodes (%d) must be at least --replicas (%d): a server's replicas each need a node of their own\n",
			o.nodes, o.replicas)
		os.Exit(2)
	case o.nodes < 1 || o.servers < 1 || o.replicas < 1 || o.volumes < 1 || o.creates < 1 || o.pairs < 1 || o.admissionRounds < 1 ||
		o.recoveryPairs < 1:
		fmt.Fprintln(os.Stderr, "--nodes, --servers, --replicas, --volumes, --creates, --pairs, --admission-rounds and "+
			"--recovery-pairs must be at least 1")
		os.Exit(2)
	case o.recoveryNodes <= recoveryReplicas:
		fmt.Fprintf(os.Stderr, "--recovery-nodes (%d) must be more than the recovery scenario's %d replicas: the lost one needs a free node\n",
			o.recoveryNodes, recoveryReplicas)
		os.Exit(2)
	}
	var results []result
	var err error
	if o.timeToBound || o.admission || o.writeCost {
		results, err = run(context.Background(), o)
	}
	if err == nil && o.recovery {
		// Last, once the other scenarios' cluster is stopped: it would share the two cores.
		fmt.Println("Scenario 6: node-loss recovery...")
		var rec []result
		rec, err = recovery(context.Background(), o)
		results = append(results, rec...)
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

type bench struct {
	o       options
	cluster *localcluster.Cluster
	c       client.Client
	// obs watches the runs' claims, pods and volumes: polling them with lists would load the
	// API server the bench measures.
	obs     client.Reader
	manager *localcluster.Process
	agents  []*localcluster.Process
}

func run(ctx context.Context, o options) ([]result, error) {
	nodes := localcluster.TarsNodes(o.nodes)
	fmt.Printf("Starting a local cluster with %d nodes (kube-controller-manager QPS %d)...\n", o.nodes, localcluster.ControllerManagerQPS)
	opts := localcluster.Options{
		BinaryDir:    o.binDir,
		StateDir:     o.stateDir,
		CRDPaths:     []string{"config/crd/bases"},
		WebhookPaths: []string{"config/webhook/manifests.yaml"},
		Manifests:    []string{"config/storageclass"},
		Nodes:        nodes,
	}
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
	if o.writeCost {
		// First, on the fresh cluster: after scenario 3's 10,000 objects it is quiet only for a
		// while.
		fmt.Println("Scenario 5: CPU cost of a TServer status write...")
		if results, err = b.writeCost(ctx); err != nil {
			return results, err
		}
	}
	if o.timeToBound {
		bound, err := b.bound(ctx)
		if results = append(results, bound...); err != nil {
			return results, err
		}
	}
	if o.admission {
		// Last: its thousands of TServers are left to the cluster's end, since deleting them takes
		// the controller-manager's garbage collector minutes that no other scenario should share.
		fmt.Println("Scenario 4: admission latency...")
		adm, err := b.admission(ctx)
		return append(results, adm...), err
	}
	return results, nil
}

// bound runs scenarios 1 to 3, which measure the same runs.
func (b *bench) bound(ctx context.Context) ([]result, error) {
	o, cluster := b.o, b.cluster
	var results []result
	// The first StatefulSets of a fresh cluster start slower (caches, schedulers queues), and so
	// do the first TServers and provisioned claims (the API server builds the claim-node-label
	// policy's type converter from its OpenAPI at the policy's first patch): warm up both ways
	// so that neither measured run pays for it.
	fmt.Println("Warming up...")
	if err := b.useProvisioner(ctx, tarsv1beta1.NoProvisioner); err != nil {
		return results, err
	}
	if _, err := b.timeToBound(ctx, "warmup", 2, true, false); err != nil {
		return results, err
	}
	if err := b.cleanUp(ctx, "warmup"); err != nil {
		return results, err
	}
	if err := b.useProvisioner(ctx, tarsv1beta1.Provisioner); err != nil {
		return results, err
	}
	var err error
	if b.agents, err = cluster.StartAgents(ctx, o.agent, "--gc-grace-period="+o.gcGrace.String()); err != nil {
		return results, err
	}
	if _, err := b.timeToBound(ctx, "warmupagents", 2, false, false); err != nil {
		return results, err
	}
	last := "warmupagents"
	// Two cores shared by every component make single runs vary by a third: scenario 1 runs in
	// pairs (Kubernetes alone, then with the agents), and the pair with the median ratio counts.
	byHand := ""
	if o.byHand {
		byHand = " (StatefulSets by hand)"
	}
	var pairs []result
	for i := 1; i <= o.pairs; i++ {
		lowerRun, oursRun := fmt.Sprintf("lower%d", i), fmt.Sprintf("agents%d", i)
		// Kubernetes alone: without the previous run's agents and volumes.
		if err := b.stopAgents(); err != nil {
			return results, err
		}
		if err := b.cleanUp(ctx, last); err != nil {
			return results, err
		}
		fmt.Printf("Scenario 1b, pair %d of %d: Kubernetes alone, the StatefulSets applied by hand, volumes pre-created as the agent would create them...\n",
			i, o.pairs)
		// Kubernetes alone: no manager either, and a class that provisions nothing, so that the
		// scheduler binds the pre-created volumes.
		if err := b.manager.Stop(); err != nil {
			return results, err
		}
		if err := b.useProvisioner(ctx, tarsv1beta1.NoProvisioner); err != nil {
			return results, err
		}
		lower, err := b.timeToBound(ctx, lowerRun, o.servers, true, i == o.pairs)
		if err != nil {
			return results, err
		}
		// Each run starts on an empty cluster: the agents would otherwise spend the measured run
		// collecting the volumes this one left unbound.
		if err := b.cleanUp(ctx, lowerRun); err != nil {
			return results, err
		}
		if err := b.useProvisioner(ctx, tarsv1beta1.Provisioner); err != nil {
			return results, err
		}
		fmt.Println("Starting the manager and the agents...")
		if b.manager, err = cluster.StartManager(ctx, o.operator, nil); err != nil {
			return results, err
		}
		if b.agents, err = cluster.StartAgents(ctx, o.agent, "--gc-grace-period="+o.gcGrace.String()); err != nil {
			return results, err
		}
		fmt.Printf("Scenario 1a, pair %d of %d: with the agents provisioning...\n", i, o.pairs)
		ours, err := b.timeToBound(ctx, oursRun, o.servers, false, i == o.pairs)
		if err != nil {
			return results, err
		}
		last = oursRun
		pair := ratio("1 time to bound", fmt.Sprintf("pair %d: all claims Bound, all pods Running%s", i, byHand),
			ours.Seconds(), lower.Seconds(), "s", 1.10)
		pair.Target, pair.Met = "", nil // the median pair below is the figure
		fmt.Printf("  pair %d: %.2f s / %.2f s = %.2f\n", i, ours.Seconds(), lower.Seconds(), pair.Ratio)
		if o.tracePV {
			for _, run := range []string{lowerRun, oursRun} {
				trace, err := pvControllerTrace(filepath.Join(cluster.LogDir, "kube-controller-manager.log"), run)
				if err != nil {
					trace = err.Error()
				}
				fmt.Printf("    %s: %s\n", run, trace)
			}
		}
		pairs = append(pairs, pair)
	}
	median := slices.SortedFunc(slices.Values(pairs), func(a, b result) int { return cmp.Compare(a.Ratio, b.Ratio) })[(len(pairs)-1)/2]
	results = append(results, pairs...)
	results = append(results, ratio("1 time to bound", "median pair: all claims Bound, all pods Running"+byHand,
		median.Value, median.Bound, "s", 1.10))

	fmt.Println("Scenario 2: leftover volumes...")
	claims := o.servers * o.replicas * o.volumes
	atDone, err := b.volumesOf(ctx, last)
	if err != nil {
		return results, err
	}
	results = append(results, result{Scenario: "2 leftovers", Metric: "PVs per bound claim at done",
		Value: float64(atDone) / float64(claims), Unit: "PV/claim"})
	time.Sleep(o.gcGrace + 10*time.Second)
	afterGrace, err := b.volumesOf(ctx, last)
	if err != nil {
		return results, err
	}
	results = append(results, ratio("2 leftovers", "PVs per bound claim after the grace period",
		float64(afterGrace)/float64(claims), 1, "PV/claim", 1.00))

	fmt.Println("Scenario 3: agent footprint...")
	results = append(results, b.footprint(ctx, b.agents)...)

	return results, nil
}

func ratio(scenario, metric string, value, bound float64, unit string, target float64) result {
	r := result{Scenario: scenario, Metric: metric, Value: value, Unit: unit, Bound: bound,
		Target: fmt.Sprintf("ratio <= %.2f", target)}
	if bound > 0 {
		r.Ratio = value / bound
		met := r.Ratio <= target+1e-9
		r.Met = &met
	}
	return r
}

// tserver is a bench TServer: replicas of one container with volumes tLocalVolume mounts.
func (b *bench) tserver(ns, app string, i int) *tarsv1beta1.TServer {
	server := fmt.Sprintf("s%d", i)
	ts := &tarsv1beta1.TServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tarsv1beta1.ResourceName(app, server)},
		Spec: tarsv1beta1.TServerSpec{
			App: app, Server: server, SubType: tarsv1beta1.SubTypeNormal,
			Normal:  &tarsv1beta1.TServerNormal{Ports: []tarsv1beta1.TServerPort{{Name: "http", Port: 8080, IsTcp: true}}},
			Release: &tarsv1beta1.TServerRelease{ID: "v1", Image: "bench/" + server + ":v1"},
			K8S:     tarsv1beta1.TServerK8S{Replicas: int32(b.o.replicas)},
		},
	}
	for v := range b.o.volumes {
		ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
			Name: fmt.Sprintf("data%d", v), MountPath: fmt.Sprintf("/data%d", v),
			Source: tarsv1beta1.TK8SMountSource{TLocalVolume: &tarsv1beta1.TLocalVolume{UID: "1000", GID: "0", Mode: "755"}},
		})
	}
	return ts
}

// timeToBound creates servers TServers in a namespace of their own (app = name, so that no claim
// matches another run's volumes) and measures until every claim is bound and every pod runs.
// With precreate, the lower bound, the volumes are made first, exactly as the agents would make
// them (one per claim, a replica's on one node, a server's replicas on different nodes), but
// unbound, for the scheduler to bind as it binds any pre-created local volume; and the
// StatefulSets the controller would make are created instead of TServers. With profile (and
// --profile-dir), the run is profiled.
func (b *bench) timeToBound(ctx context.Context, name string, servers int, precreate, profile bool) (time.Duration, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := b.c.Create(ctx, ns); err != nil {
		return 0, err
	}
	volumes := servers * b.o.replicas * b.o.volumes // one per claim
	if precreate {
		for i := range servers {
			ts := b.tserver(name, name, i)
			for r := range b.o.replicas {
				node := b.cluster.Nodes[(i*b.o.replicas+r)%len(b.cluster.Nodes)]
				for _, m := range ts.Spec.K8S.Mounts {
					if err := b.c.Create(ctx, b.volume(ts, m.Name, node.Name)); err != nil {
						return 0, err
					}
				}
			}
		}
		// Pre-created volumes are ready to use: the clock starts once the PV controller has
		// marked every one Available.
		if err := b.waitAvailable(ctx, name, volumes); err != nil {
			return 0, err
		}
	}
	if b.o.profileDir != "" && profile {
		defer b.profile(ctx, name)()
	}
	// Both runs start on a quiet cluster: whatever was just started (caches filling) or cleaned up
	// is over, as it would be long before a real rollout.
	if err := waitQuiet(ctx); err != nil {
		return 0, err
	}
	cpuBefore := cpuByComponent()
	start := time.Now()
	if err := b.apply(ctx, name, servers, !precreate && !b.o.byHand); err != nil {
		return 0, err
	}
	want := servers * b.o.replicas
	// Milestones on the way, to show where the time goes.
	milestones := map[string]time.Duration{}
	mark := func(what string, done bool) {
		if _, seen := milestones[what]; done && !seen {
			milestones[what] = time.Since(start)
		}
	}
	deadline := time.Now().Add(15 * time.Minute)
	for time.Now().Before(deadline) {
		pvcs := &corev1.PersistentVolumeClaimList{}
		pods := &corev1.PodList{}
		pvs := &corev1.PersistentVolumeList{}
		if err := b.obs.List(ctx, pvcs, client.InNamespace(name), client.UnsafeDisableDeepCopy); err != nil {
			return 0, err
		}
		if err := b.obs.List(ctx, pods, client.InNamespace(name), client.UnsafeDisableDeepCopy); err != nil {
			return 0, err
		}
		if err := b.obs.List(ctx, pvs, client.MatchingLabels{tarsv1beta1.LabelServerApp: name}, client.UnsafeDisableDeepCopy); err != nil {
			return 0, err
		}
		statefulSets := &appsv1.StatefulSetList{}
		if err := b.obs.List(ctx, statefulSets, client.InNamespace(name), client.UnsafeDisableDeepCopy); err != nil {
			return 0, err
		}
		mark("all StatefulSets exist", len(statefulSets.Items) == servers)
		bound := 0
		for _, pvc := range pvcs.Items {
			if pvc.Status.Phase == corev1.ClaimBound {
				bound++
			}
		}
		scheduled, running := 0, 0
		for _, pod := range pods.Items {
			if pod.Spec.NodeName != "" {
				scheduled++
			}
			if pod.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		mark("all claims exist", len(pvcs.Items) == want*b.o.volumes)
		available := 0
		for _, pv := range pvs.Items {
			if pv.Status.Phase != corev1.VolumePending {
				available++ // Available, or bound since
			}
		}
		mark("all volumes exist", len(pvs.Items) >= volumes)
		mark("all volumes usable", available >= volumes)
		mark("all pods exist", len(pods.Items) == want)
		mark("all pods scheduled", scheduled == want)
		mark("all claims bound", bound == want*b.o.volumes)
		if bound == want*b.o.volumes && running == want {
			took := time.Since(start)
			fmt.Printf("  %s: %d claims bound, %d pods running in %s\n", name, bound, running, took.Round(10*time.Millisecond))
			for _, what := range []string{"all StatefulSets exist", "all claims exist", "all volumes exist", "all volumes usable", "all pods exist", "all pods scheduled", "all claims bound"} {
				fmt.Printf("    %-20s %s\n", what, milestones[what].Round(10*time.Millisecond))
			}
			printCPU(cpuBefore, cpuByComponent())
			printSpread(pods.Items)
			b.printEvents(ctx, name)
			return took, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("%s: not all claims bound and pods running after 15 minutes", name)
}

// printSpread says how evenly the pods landed on the nodes (each node's agent provisions the
// volumes of the pods on it).
func printSpread(pods []corev1.Pod) {
	perNode := map[string]int{}
	for _, pod := range pods {
		perNode[pod.Spec.NodeName]++
	}
	counts := slices.Collect(maps.Values(perNode))
	fmt.Printf("    pods per node: %d to %d on %d nodes\n", slices.Min(counts), slices.Max(counts), len(counts))
}

// printEvents counts the events of namespace ns by reason (each one an API write of the
// component that reported it; a series counts as often as it happened), and says how many pods
// the scheduler found no node for at least once (FailedScheduling): each such attempt backs a
// pod off.
func (b *bench) printEvents(ctx context.Context, ns string) {
	list := &eventsv1.EventList{}
	if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
		fmt.Printf("    events: %v\n", err)
		return
	}
	unschedulable := sets.New[string]()
	reasons := map[string]int{}
	var why []string // distinct FailedScheduling messages
	for _, e := range list.Items {
		n := max(1, int(e.DeprecatedCount)) // core/v1 recorders count repeats there
		if e.Series != nil {
			n = int(e.Series.Count)
		}
		reporter := e.ReportingController
		if reporter == "" {
			reporter = e.DeprecatedSource.Component // core/v1 recorders
		}
		reasons[reporter+" "+e.Reason] += n
		if e.Reason == "FailedScheduling" {
			unschedulable.Insert(e.Regarding.Name)
			if !slices.Contains(why, e.Note) {
				why = append(why, e.Note)
			}
		}
	}
	lines := make([]string, 0, len(reasons))
	for _, reason := range slices.Sorted(maps.Keys(reasons)) {
		lines = append(lines, fmt.Sprintf("%s %d", reason, reasons[reason]))
	}
	fmt.Printf("    events: %s\n", strings.Join(lines, ", "))
	fmt.Printf("    pods found no node at least once: %d (%d attempts)\n", unschedulable.Len(), unschedulableAttempts(reasons))
	for _, note := range why[:min(3, len(why))] {
		fmt.Printf("      %s\n", note)
	}
}

// unschedulableAttempts sums the FailedScheduling events of every reporter.
func unschedulableAttempts(reasons map[string]int) int {
	n := 0
	for reason, count := range reasons {
		if strings.HasSuffix(reason, " FailedScheduling") {
			n += count
		}
	}
	return n
}

// apply creates the run's servers: as TServers, or, for Kubernetes alone, as the StatefulSets
// (and Services) the controller would make of them.
func (b *bench) apply(ctx context.Context, name string, servers int, tservers bool) error {
	for i := range servers {
		ts := b.tserver(name, name, i)
		if tservers {
			if err := b.c.Create(ctx, ts); err != nil {
				return err
			}
			continue
		}
		svc, sts := controller.Desired(ts)
		if err := b.c.Create(ctx, svc); err != nil {
			return err
		}
		if err := b.c.Create(ctx, sts); err != nil {
			return err
		}
	}
	return nil
}

// apiServerName names the API server's profiles.
const apiServerName = "kube-apiserver"

// profile records CPU profiles of the manager, every agent and the API server for
// o.profileFor into o.profileDir; the returned function waits for them.
func (b *bench) profile(ctx context.Context, run string) (waitForProfiles func()) {
	var wg sync.WaitGroup
	if err := os.MkdirAll(b.o.profileDir, 0o755); err != nil {
		fmt.Printf("    profiles: %v\n", err)
		return wg.Wait
	}
	apiServer, err := rest.HTTPClientFor(b.cluster.Config)
	if err != nil {
		fmt.Printf("    profiles: %v\n", err)
		return wg.Wait
	}
	before, beforeSeconds, err := requestStats(ctx, apiServer, b.cluster.Config.Host)
	if err != nil {
		fmt.Printf("    profiles: %v\n", err)
	}
	wg.Go(func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.o.profileFor):
		}
		after, afterSeconds, err := requestStats(ctx, apiServer, b.cluster.Config.Host)
		if err != nil {
			fmt.Printf("    profiles: %v\n", err)
			return
		}
		var lines []string
		for k, n := range after {
			if d := n - before[k]; d > 0 {
				mean := 1000 * (afterSeconds[k] - beforeSeconds[k]) / d
				lines = append(lines, fmt.Sprintf("%8.0f %8.1f ms %s", d, mean, k))
			}
		}
		slices.Sort(lines)
		slices.Reverse(lines)
		file := filepath.Join(b.o.profileDir, run+"-kube-apiserver-requests.txt")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			fmt.Printf("    profiles: %v\n", err)
		}
	})
	query := fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(b.o.profileFor.Seconds()))
	targets := map[string]string{apiServerName: strings.TrimSuffix(b.cluster.Config.Host, "/") + query}
	for _, p := range append([]*localcluster.Process{b.manager}, b.agents...) {
		if running(p) {
			targets[p.Name] = "http://" + p.PprofAddr + query
		}
	}
	for name, url := range targets {
		c := http.DefaultClient
		if name == apiServerName {
			c = apiServer
		}
		wg.Go(func() {
			file := filepath.Join(b.o.profileDir, run+"-"+name+".pprof")
			if err := download(ctx, c, url, file); err != nil {
				fmt.Printf("    profile of %s: %v\n", name, err)
			}
			if name == apiServerName {
				return
			}
			// Where memory went, once the run is over.
			heap := filepath.Join(b.o.profileDir, run+"-"+name+"-heap.pprof")
			heapURL := strings.Replace(url, query, "/debug/pprof/heap", 1)
			if err := download(ctx, c, heapURL, heap); err != nil {
				fmt.Printf("    heap profile of %s: %v\n", name, err)
			}
		})
	}
	return wg.Wait
}

// running says whether p has not exited.
func running(p *localcluster.Process) bool {
	select {
	case <-p.Exited():
		return false
	default:
		return true
	}
}

// requestStats reads the API server's request counters and the time it spent on those requests
// (apiserver_request_duration_seconds_sum: from receiving a request to responding, watches
// excepted), keyed by verb, group, resource and subresource.
func requestStats(ctx context.Context, c *http.Client, host string) (counts, seconds map[string]float64, err error) {
	by := []string{"verb", "resource", "subresource", "group"}
	if counts, err = apiServerMetric(ctx, c, host, "apiserver_request_total", by...); err != nil {
		return nil, nil, err
	}
	seconds, err = apiServerMetric(ctx, c, host, "apiserver_request_duration_seconds_sum", by...)
	return counts, seconds, err
}

// apiServerMetric sums the API server's samples of metric by the given labels.
func apiServerMetric(ctx context.Context, c *http.Client, host, metric string, by ...string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	sums := map[string]float64{}
	for line := range strings.SplitSeq(string(data), "\n") {
		sample, ok := strings.CutPrefix(line, metric+"{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(sample, '}')
		v, err := strconv.ParseFloat(strings.TrimSpace(sample[end+1:]), 64)
		if err != nil {
			continue
		}
		var keep []string
		for l := range strings.SplitSeq(sample[:end], ",") {
			if name, _, _ := strings.Cut(l, "="); slices.Contains(by, name) {
				keep = append(keep, l)
			}
		}
		sums[strings.Join(keep, " ")] += v
	}
	return sums, nil
}

func download(ctx context.Context, c *http.Client, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}

// clients makes a client of the cluster at cfg, for core and TServer kinds, and an observer.
func clients(ctx context.Context, cfg *rest.Config) (client.Client, client.Reader, error) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tarsv1beta1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, err
	}
	obs, err := observer(ctx, cfg, scheme)
	if err != nil {
		return nil, nil, err
	}
	return c, obs, nil
}

// observer starts a cache of every claim and pod and of the tars volumes, and waits for it.
func observer(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (client.Reader, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.DisableCompression = true
	tars, err := labels.Parse(tarsv1beta1.LabelServerApp)
	if err != nil {
		return nil, err
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
		&corev1.PersistentVolume{}: {Label: tars},
	}})
	if err != nil {
		return nil, err
	}
	for _, obj := range []client.Object{&corev1.PersistentVolumeClaim{}, &corev1.Pod{}, &corev1.PersistentVolume{}, &appsv1.StatefulSet{}} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, err
		}
	}
	go func() {
		if err := c.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "observer: %v\n", err)
		}
	}()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("observer: caches did not sync")
	}
	return c, nil
}

// cleanUp deletes a run's namespace and volumes, and waits until they are gone.
func (b *bench) cleanUp(ctx context.Context, name string) error {
	took, err := b.deleteAndWait(ctx, name, map[string]string{tarsv1beta1.LabelServerApp: name}, 5*time.Minute)
	if err != nil {
		return fmt.Errorf("cleaning up run %s: %w", name, err)
	}
	fmt.Printf("  cleaned up %s in %s\n", name, took.Round(10*time.Millisecond))
	return nil
}

// deleteAndWait deletes namespace and the volumes labelled volumeLabels, and waits up to timeout
// until both are gone; it returns how long that took.
func (b *bench) deleteAndWait(ctx context.Context, namespace string, volumeLabels map[string]string,
	timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := b.c.Delete(ctx, ns); client.IgnoreNotFound(err) != nil {
		return 0, err
	}
	if err := b.c.DeleteAllOf(ctx, &corev1.PersistentVolume{}, client.MatchingLabels(volumeLabels)); err != nil {
		return 0, err
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pvs := &metav1.PartialObjectMetadataList{}
		pvs.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PersistentVolumeList"))
		if err := b.c.List(ctx, pvs, client.MatchingLabels(volumeLabels), client.Limit(1)); err != nil || len(pvs.Items) > 0 {
			return false, err
		}
		err := b.c.Get(ctx, client.ObjectKeyFromObject(ns), ns)
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	return time.Since(start), err
}

// useProvisioner makes t-storage-class one of provisioner (a class's provisioner is immutable:
// it is made anew), and waits until the scheduler can have seen it.
func (b *bench) useProvisioner(ctx context.Context, provisioner string) error {
	sc := &storagev1.StorageClass{}
	if err := b.c.Get(ctx, client.ObjectKey{Name: tarsv1beta1.StorageClassName}, sc); err != nil {
		return err
	}
	if sc.Provisioner == provisioner {
		return nil
	}
	if err := b.c.Delete(ctx, sc); err != nil {
		return err
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := b.c.Get(ctx, client.ObjectKeyFromObject(sc), &storagev1.StorageClass{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		return err
	}
	fresh := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: sc.Name, Labels: sc.Labels, Annotations: sc.Annotations},
		Provisioner:       provisioner,
		ReclaimPolicy:     sc.ReclaimPolicy,
		VolumeBindingMode: sc.VolumeBindingMode,
	}
	if err := b.c.Create(ctx, fresh); err != nil {
		return err
	}
	time.Sleep(time.Second) // the scheduler's, controller-manager's and agents' informers
	fmt.Printf("  t-storage-class: provisioner %s\n", provisioner)
	return nil
}

// stopAgents stops the agents of the previous pair.
func (b *bench) stopAgents() error {
	errs := make([]error, 0, len(b.agents))
	for _, a := range b.agents {
		errs = append(errs, a.Stop())
	}
	b.agents = nil
	return errors.Join(errs...)
}

// waitAvailable waits until n volumes of app are Available.
func (b *bench) waitAvailable(ctx context.Context, app string, n int) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		pvs := &corev1.PersistentVolumeList{}
		if err := b.obs.List(ctx, pvs, client.MatchingLabels{tarsv1beta1.LabelServerApp: app}, client.UnsafeDisableDeepCopy); err != nil {
			return false, err
		}
		available := 0
		for _, pv := range pvs.Items {
			if pv.Status.Phase == corev1.VolumeAvailable {
				available++
			}
		}
		return available == n, nil
	})
}

// volume is the PersistentVolume the agent of node would make for volume of ts: its own builder,
// given the claim the controller makes.
func (b *bench) volume(ts *tarsv1beta1.TServer, volume, node string) *corev1.PersistentVolume {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ts.Namespace, Labels: map[string]string{
			tarsv1beta1.LabelServerApp: ts.Spec.App, tarsv1beta1.LabelServerName: ts.Spec.Server,
			tarsv1beta1.LabelLocalVolume: volume,
		}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			},
		},
	}
	cfg := agent.Config{NodeName: node, Hostname: node, HostRoot: localcluster.ProductionHostRoot,
		StorageClassName: tarsv1beta1.StorageClassName}
	pv := cfg.Volume(claim, corev1.PersistentVolumeReclaimDelete)
	pv.Spec.ClaimRef = nil // pre-created: the scheduler binds it, as any existing volume
	return pv
}

// volumesOf counts the volumes of the run whose app is app.
func (b *bench) volumesOf(ctx context.Context, app string) (int, error) {
	list := &corev1.PersistentVolumeList{}
	err := b.c.List(ctx, list, client.MatchingLabels{tarsv1beta1.LabelServerApp: app})
	return len(list.Items), err
}

// footprint reads the agents' peak RSS and CPU time, then adds unrelated claims and volumes,
// restarts one agent, and compares its RSS once it has settled with that of an agent started
// on the empty cluster.
func (b *bench) footprint(ctx context.Context, agents []*localcluster.Process) []result {
	var out []result
	rss, cpu := make([]float64, 0, len(agents)), make([]float64, 0, len(agents))
	for _, p := range agents {
		hwm, secs := procStats(p.Pid())
		rss = append(rss, hwm)
		cpu = append(cpu, secs)
	}
	maxRSS, maxCPU := slices.Max(rss), slices.Max(cpu)
	top := agents[slices.Index(rss, maxRSS)].Pid()
	fmt.Printf("  agents: peak RSS %.1f MB; now %.1f MB anonymous, %.1f MB of the binary's pages\n",
		maxRSS, statusField(top, "RssAnon:"), statusField(top, "RssFile:"))
	out = append(out, result{Scenario: scenarioFootprint, Metric: "peak RSS per agent (max of agents)", Value: maxRSS,
		Unit: "MB", Target: "<= 35 MB", Met: new(maxRSS <= 35)})
	out = append(out, result{Scenario: scenarioFootprint, Metric: "CPU seconds per agent (max of agents)", Value: maxCPU, Unit: "s"})

	// A fresh agent on the cluster as it is: the baseline.
	base, err := b.settledAgentRSS(ctx, "baseline")
	if err != nil {
		fmt.Fprintln(os.Stderr, "footprint baseline:", err)
		return out
	}
	fmt.Printf("  creating %d unrelated claims and volumes...\n", b.o.unrelated)
	if err := b.createUnrelated(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "unrelated objects:", err)
		return out
	}
	loaded, err := b.settledAgentRSS(ctx, "loaded")
	if err != nil {
		fmt.Fprintln(os.Stderr, "footprint loaded:", err)
		return out
	}
	out = append(out, result{Scenario: scenarioFootprint, Metric: fmt.Sprintf("RSS with %d unrelated objects", b.o.unrelated),
		Value: loaded, Unit: "MB", Bound: base, Ratio: loaded / base, Target: "ratio <= 1.10", Met: new(loaded/base <= 1.10)})
	// kube-controller-manager's PV controller goes through every claim and volume every 15
	// seconds: gone, they leave the cluster as quiet as before for whatever runs next.
	if err := b.deleteUnrelated(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "unrelated objects:", err)
	}
	return out
}

// settledAgentRSS starts an agent for the first node in a state directory of its own, waits
// for its caches to fill, and returns its RSS in MB.
func (b *bench) settledAgentRSS(ctx context.Context, name string) (float64, error) {
	node := b.cluster.Nodes[0].Name
	dir := filepath.Join(b.cluster.StateDir, "footprint-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	port, err := localcluster.FreePort()
	if err != nil {
		return 0, err
	}
	p, err := b.cluster.StartProcess("agent-footprint-"+name, b.o.agent, []string{
		"--kubeconfig=" + b.cluster.KubeconfigPath, "--node-name=" + node,
		"--host-root=" + localcluster.ProductionHostRoot, "--host-root-mount=" + dir,
		"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(port),
		// Another storage class: it must not touch the running agents' volumes.
		"--storage-class=footprint-" + name,
	}, nil, nil)
	if err != nil {
		return 0, err
	}
	defer func() { _ = p.Stop() }()
	if err := localcluster.WaitForReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", port)); err != nil {
		return 0, err
	}
	time.Sleep(5 * time.Second) // caches filled, garbage collected once
	// A Go heap this small is collected every few seconds, and its freed pages go back to the
	// system a little later: one reading lands anywhere in that cycle. The median of readings
	// over ten seconds does not.
	var samples []float64
	for range 40 {
		samples = append(samples, currentRSS(p.Pid()))
		time.Sleep(250 * time.Millisecond)
	}
	slices.Sort(samples)
	peak, _ := procStats(p.Pid())
	median := samples[len(samples)/2]
	fmt.Printf("  agent %s: RSS %.1f MB (median of 10 s; %.1f to %.1f; peak %.1f MB)\n",
		name, median, samples[0], samples[len(samples)-1], peak)
	return median, nil
}

// The namespace of the unrelated claims, and the labels of the unrelated volumes.
const unrelatedNamespace = "unrelated"

var unrelatedLabels = map[string]string{"app": "other"}

// createUnrelated makes claims and volumes of another storage class and other nodes.
func (b *bench) createUnrelated(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: unrelatedNamespace}}
	if err := b.c.Create(ctx, ns); err != nil {
		return err
	}
	for i := range b.o.unrelated / 2 {
		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%d", i), Labels: unrelatedLabels},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:               corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/other"}},
				StorageClassName:       "other",
			},
		}
		if err := b.c.Create(ctx, pv); err != nil {
			return err
		}
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("unrelated-%d", i), Namespace: unrelatedNamespace},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
				StorageClassName: new("other-unbound"),
			},
		}
		if err := b.c.Create(ctx, pvc); err != nil {
			return err
		}
	}
	return nil
}

// deleteUnrelated deletes what createUnrelated made and waits until it is gone.
func (b *bench) deleteUnrelated(ctx context.Context) error {
	took, err := b.deleteAndWait(ctx, unrelatedNamespace, unrelatedLabels, 10*time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("  deleted the unrelated claims and volumes in %s\n", took.Round(10*time.Millisecond))
	return nil
}

// procStats returns a process's peak RSS (VmHWM) in MB and its CPU time in seconds.
func procStats(pid int) (float64, float64) {
	return statusField(pid, "VmHWM:"), cpuSeconds(pid)
}

func currentRSS(pid int) float64 { return statusField(pid, "VmRSS:") }

func statusField(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if value, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(value)[0], 64)
			return kb / 1024
		}
	}
	return 0
}

func cpuSeconds(pid int) float64 {
	st, err := readStat(pid)
	if err != nil {
		return 0
	}
	return st.cpuSeconds
}

// stat is what the bench reads from /proc/<pid>/stat.
type stat struct {
	ppid       int
	cpuSeconds float64
}

func readStat(pid int) (stat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ppid, _ := strconv.Atoi(fields[1])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return stat{ppid: ppid, cpuSeconds: (utime + stime) / clockTicks()}, nil
}

// clockTicks is USER_HZ, the unit of /proc's CPU times.
var clockTicks = sync.OnceValue(func() float64 {
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil {
			return v
		}
	}
	return 100
})

// cpuByComponent sums the CPU seconds of this process's descendants by component: the
// command's base name, and "agents" for the agent binary.
func cpuByComponent() map[string]float64 {
	stats := map[int]stat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			stats[pid] = st
		}
	}
	self := os.Getpid()
	out := map[string]float64{}
	for pid, st := range stats {
		p := st.ppid
		for p != 0 && p != self {
			p = stats[p].ppid
		}
		if p != self {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		name := filepath.Base(args[0])
		if name == "tserver-agent" {
			name = "agents"
		}
		out[name] += st.cpuSeconds
	}
	return out
}

// quietCPU is how much CPU (seconds per second, all components together) counts as a quiet
// cluster: kwok's node heartbeats and the controllers' resyncs, nothing else.
const quietCPU = 0.15

// waitQuiet waits until the cluster's components together use less than quietCPU for a second.
func waitQuiet(ctx context.Context) error {
	start := time.Now()
	before := sum(cpuByComponent())
	for time.Since(start) < time.Minute {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		now := sum(cpuByComponent())
		if now-before < quietCPU {
			fmt.Printf("    quiet after %s\n", time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		before = now
	}
	return errors.New("the cluster did not become quiet within a minute")
}

func sum(m map[string]float64) float64 {
	total := 0.0
	for _, v := range m {
		total += v
	}
	return total
}

// printCPU prints the CPU seconds each component used since before.
func printCPU(before, after map[string]float64) {
	names := make([]string, 0, len(after))
	for name := range after {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Compare(after[b]-before[b], after[a]-before[a])
	})
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f", name, after[name]-before[name]))
	}
	fmt.Printf("    CPU seconds: %s\n", strings.Join(parts, ", "))
}

// admission times TServer creates through the API server with the webhooks and without them.
// The target is measured at a steady rate the cluster keeps up with; then once back to back,
// where each create's follow-up work (StatefulSet, Service, status, events, the
// kube-controller-manager's share) saturates the machine and queueing dominates.
func (b *bench) admission(ctx context.Context) ([]result, error) {
	// With and without the webhooks at the same time: the webhooks skip namespaces labelled
	// webhooksOff, and the creates alternate between one such namespace and one without, so both
	// halves see the same cluster. Blocks of each after the other (with the configurations
	// removed and registered again) differed from run to run by more than the webhooks cost, as
	// the cluster's background work came and went.
	off := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: webhooksOff, Operator: metav1.LabelSelectorOpDoesNotExist,
	}}}
	if err := setNamespaceSelectors(ctx, b.c, off); err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second) // the API server's webhook configuration informer

	var runs []string // namespaces served by the webhooks; offNamespace of each is not
	creates := func(rate float64, n int, validated bool) (with, without []time.Duration, err error) {
		runs = append(runs, fmt.Sprintf("admission-%d", len(runs)+1))
		return b.timeCreates(ctx, runs[len(runs)-1], rate, n, validated)
	}
	if _, _, err := creates(b.o.admissionRate, 50, false); err != nil { // warm-up, not measured
		return nil, err
	}
	// The target: typical creates at a steady rate. A p99 of 1,000 is the tenth slowest, and two
	// halves of the same creates differ there by several milliseconds on two shared cores:
	// --admission-rounds rounds, and the round with the median overhead counts.
	steady := rateName(b.o.admissionRate)
	var rounds [][]result
	for i := range b.o.admissionRounds {
		before := b.webhookCalls(ctx)
		with, without, err := creates(b.o.admissionRate, b.o.creates, false)
		if err != nil {
			return nil, err
		}
		what := fmt.Sprintf("%s, round %d", steady, i+1)
		b.printWebhookCalls(ctx, what, before)
		rounds = append(rounds, admissionResults(what, with, without))
	}
	overhead := func(r []result) float64 { return r[len(r)-1].Value }
	median := slices.SortedFunc(slices.Values(rounds), func(a, b []result) int { return cmp.Compare(overhead(a), overhead(b)) })[(len(rounds)-1)/2]
	var out []result
	for i, r := range rounds {
		out = append(out, result{Scenario: scenarioAdmission, Metric: fmt.Sprintf("p99 overhead, %s, round %d", steady, i+1),
			Value: overhead(r), Unit: "ms"})
	}
	out = append(out, median[:len(median)-1]...)
	m := median[len(median)-1]
	m.Metric, m.Target, m.Met = "p99 overhead of the webhooks, "+steady+" (median round)", "<= 5 ms", new(m.Value <= 5)
	out = append(out, m)

	// For the record: creates the validating webhook is called for, and creates back to back.
	before := b.webhookCalls(ctx)
	with, without, err := creates(b.o.admissionRate, b.o.creates, true)
	if err != nil {
		return out, err
	}
	what := steady + ", creates the webhook validates"
	b.printWebhookCalls(ctx, what, before)
	out = append(out, admissionResults(what, with, without)...)
	before = b.webhookCalls(ctx)
	if with, without, err = creates(0, b.o.creates, false); err != nil {
		return out, err
	}
	b.printWebhookCalls(ctx, rateName(0), before)
	out = append(out, admissionResults(rateName(0), with, without)...)

	// The webhooks serve every namespace again, as in any cluster.
	return out, setNamespaceSelectors(ctx, b.c, &metav1.LabelSelector{})
}

// offNamespace is the namespace, labelled webhooksOff, whose creates alternate with ns's.
func offNamespace(ns string) string { return ns + "-off" }

// setNamespaceSelectors gives every webhook of the cluster's configurations selector.
func setNamespaceSelectors(ctx context.Context, c client.Client, selector *metav1.LabelSelector) error {
	mutating := &admissionregistrationv1.MutatingWebhookConfigurationList{}
	validating := &admissionregistrationv1.ValidatingWebhookConfigurationList{}
	if err := c.List(ctx, mutating); err != nil {
		return err
	}
	if err := c.List(ctx, validating); err != nil {
		return err
	}
	var configs []client.Object
	for i := range mutating.Items {
		for j := range mutating.Items[i].Webhooks {
			mutating.Items[i].Webhooks[j].NamespaceSelector = selector
		}
		configs = append(configs, &mutating.Items[i])
	}
	for i := range validating.Items {
		for j := range validating.Items[i].Webhooks {
			validating.Items[i].Webhooks[j].NamespaceSelector = selector
		}
		configs = append(configs, &validating.Items[i])
	}
	for _, obj := range configs {
		if err := c.Update(ctx, obj); err != nil {
			return err
		}
	}
	return nil
}

// webhooksOff labels the admission scenario's namespaces that the webhooks skip.
const webhooksOff = "bench.tserver-operator/webhooks-off"

// admissionResults are the p50 and p99 of creates with and without the webhooks, and the p99
// overhead, last.
func admissionResults(what string, with, without []time.Duration) []result {
	slices.Sort(with)
	slices.Sort(without)
	p := func(d []time.Duration, q float64) float64 {
		return float64(d[int(q*float64(len(d)-1))].Microseconds()) / 1000
	}
	fmt.Printf("  %s: p50/p99 with webhooks %.1f/%.1f ms, without %.1f/%.1f ms (%d creates each)\n",
		what, p(with, 0.50), p(with, 0.99), p(without, 0.50), p(without, 0.99), len(with))
	return []result{
		{Scenario: scenarioAdmission, Metric: "create p50 with webhooks, " + what, Value: p(with, 0.50), Unit: "ms",
			Bound: p(without, 0.50)},
		{Scenario: scenarioAdmission, Metric: "create p99 with webhooks, " + what, Value: p(with, 0.99), Unit: "ms",
			Bound: p(without, 0.99)},
		{Scenario: scenarioAdmission, Metric: "p99 overhead of the webhooks, " + what, Value: p(with, 0.99) - p(without, 0.99), Unit: "ms"},
	}
}

// printWebhookCalls prints how often and how long on average the API server called each
// webhook since before.
func (b *bench) printWebhookCalls(ctx context.Context, what string, before map[string]webhookCall) {
	for name, c := range b.webhookCalls(ctx) {
		if n := c.n - before[name].n; n > 0 {
			fmt.Printf("  %s: webhook %s called %d times, %.2f ms each on average as the API server sees it\n",
				what, name, int(n), 1000*(c.seconds-before[name].seconds)/n)
		}
	}
}

// rateName says how creates are sent: at a rate, or back to back (rate 0).
func rateName(rate float64) string {
	if rate <= 0 {
		return "back to back"
	}
	return fmt.Sprintf("%g per s", rate)
}

// webhookCall is the API server's running total of one webhook's calls.
type webhookCall struct{ n, seconds float64 }

// webhookCalls reads how often and how long the API server has called each webhook so far.
func (b *bench) webhookCalls(ctx context.Context) map[string]webhookCall {
	out := map[string]webhookCall{}
	c, err := rest.HTTPClientFor(b.cluster.Config)
	if err != nil {
		return out
	}
	const metric = "apiserver_admission_webhook_admission_duration_seconds"
	sums, err := apiServerMetric(ctx, c, b.cluster.Config.Host, metric+"_sum", "name")
	if err != nil {
		fmt.Printf("  webhook calls: %v\n", err)
		return out
	}
	counts, _ := apiServerMetric(ctx, c, b.cluster.Config.Host, metric+"_count", "name")
	for name, sum := range sums {
		out[name] = webhookCall{n: counts[name], seconds: sum}
	}
	return out
}

// timeCreates times n TServer creates with the webhooks and n without, alternating between a
// namespace the webhooks serve and one they skip (which of the two goes first alternates too),
// at rate creates per second in all, or back to back when rate is 0.
func (b *bench) timeCreates(ctx context.Context, ns string, rate float64, n int, validated bool) (with, without []time.Duration, err error) {
	namespaces := []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		{ObjectMeta: metav1.ObjectMeta{Name: offNamespace(ns), Labels: map[string]string{webhooksOff: ""}}},
	}
	for _, namespace := range namespaces {
		if err := b.c.Create(ctx, namespace); err != nil {
			return nil, nil, err
		}
	}
	if b.o.profileDir != "" {
		defer b.profile(ctx, ns)()
	}
	with, without = make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	begin := time.Now()
	for i := range 2 * n {
		if rate > 0 {
			time.Sleep(time.Until(begin.Add(time.Duration(float64(i) / rate * float64(time.Second)))))
		}
		webhooks := (i%2 == 0) == (i/2%2 == 0) // with, without; without, with; ...
		namespace := namespaces[0].Name
		if !webhooks {
			namespace = namespaces[1].Name
		}
		// An app of the namespace's own: the validating webhook warns about a server of the same
		// app and name in another namespace, which users rarely have and the bench should not.
		ts := b.tserver(namespace, strings.ReplaceAll(namespace, "-", ""), i/2)
		ts.Spec.Release = nil // no pods: this measures admission, not scheduling
		if validated {
			// Resources are among what only the validating webhook checks.
			ts.Spec.K8S.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}
		}
		start := time.Now()
		if err := b.c.Create(ctx, ts); err != nil {
			return nil, nil, err
		}
		if webhooks {
			with = append(with, time.Since(start))
		} else {
			without = append(without, time.Since(start))
		}
	}
	return with, without, nil
}

func printTable(o options, results []result) {
	fmt.Println()
	if o.timeToBound || o.admission || o.writeCost {
		fmt.Printf("M=%d nodes, S=%d TServers x R=%d replicas x V=%d tLocalVolumes, kube-controller-manager QPS %d, "+
			"GC grace %s\n", o.nodes, o.servers, o.replicas, o.volumes, localcluster.ControllerManagerQPS, o.gcGrace)
	}
	if o.recovery {
		fmt.Printf("Recovery: %d nodes, one TServer of %d replicas x 1 tLocalVolume, node-loss grace %s, %d pairs\n",
			o.recoveryNodes, recoveryReplicas, o.nodeLossGrace, o.recoveryPairs)
	}
	fmt.Println()
	fmt.Printf("%-20s %-46s %10s %-9s %10s %7s %-16s %s\n", "scenario", "metric", "value", "unit", "bound", "ratio", "target", "met")
	for _, r := range results {
		met := ""
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		bound, rat := "", ""
		if r.Bound != 0 {
			bound = fmt.Sprintf("%.2f", r.Bound)
		}
		if r.Ratio != 0 {
			rat = fmt.Sprintf("%.2f", r.Ratio)
		}
		fmt.Printf("%-20s %-46s %10.2f %-9s %10s %7s %-16s %s\n", r.Scenario, r.Metric, r.Value, r.Unit, bound, rat, r.Target, met)
	}
}
