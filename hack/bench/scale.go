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

// Scenario 8, on a cluster of its own: a fleet of --scale-servers TServers of one tLocalVolume on
// --scale-nodes nodes rolled out, and then restarted all at once, with the operator and with
// Kubernetes alone; and the manager's and the agents' footprint at that scale.

package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

const scenarioScale = "8 scale"

// Targets of the scale scenario: time ratios and API requests per claim against Kubernetes
// alone, the manager's peak RSS, and an agent's RSS on a cluster five times bigger.
const (
	scaleTimeTarget     = 1.10
	scaleRequestsTarget = 1.5
	scaleManagerRSS     = 250 // MB
	scaleAgentTarget    = 1.10
)

// scaleFirstServers is the fleet the manager's RSS is first read at, as in scenario 1.
const scaleFirstServers = 30

// scale runs scenario 8 on a cluster of o.scaleNodes nodes:
//   - Kubernetes alone: the StatefulSets of o.scaleServers TServers applied by hand, one volume
//     per claim made as the claim appears, bound to it as the agents' are; its restart is run on
//     the operator's fleet, between the operator's two (restarts).
//   - The operator on o.scaleSmallNodes nodes (the others cordoned), with as many pods per node
//     as the whole fleet will have: the manager's RSS at scaleFirstServers TServers and each of
//     those nodes' agent's RSS.
//   - The operator with the whole fleet, from a fresh manager and fresh agents: the same rollout
//     and restart (the manager and the agents killed as the pods are deleted, started again as
//     their kubelets would; kept running with o.scaleKeepOperator), and the footprint again.
//   - With o.scaleNoWork, last, Kubernetes with a provisioner of no work (noWorkRollout): the
//     same StatefulSets by hand, each claim's volume made by the bench on the node the scheduler
//     selected for it: what the operator's rollout costs beyond Kubernetes' own protocol of
//     provisioning (not a target).
func scale(ctx context.Context, o options) ([]result, error) {
	scaleBegan = time.Now()
	defer func() { fmt.Printf("%sScenario 8 done\n", elapsed()) }()
	so := o
	so.nodes, so.servers, so.volumes = o.scaleNodes, o.scaleServers, 1
	fmt.Printf(elapsed()+"Starting a local cluster with %d nodes for the scale scenario...\n", so.nodes)
	// Inside the other scenarios' state directory: that cluster cleans only what it owns.
	cluster, err := localcluster.Start(ctx, clusterOptions(o, filepath.Join(o.stateDir, "scale"),
		localcluster.TarsNodes(so.nodes)))
	if err != nil {
		return nil, err
	}
	defer func() { _ = cluster.Stop() }()
	c, obs, err := clients(ctx, cluster.Config)
	if err != nil {
		return nil, err
	}
	// Kubernetes alone's volumes are made bound to their claims as the claims appear, as the
	// agents make them (volumePerClaim): made beforehand and left for the scheduler to match,
	// every pod's claim against every volume of the class on every node, they took seven minutes
	// to bind the first 400 of 3,000 claims.
	b := &bench{o: so, cluster: cluster, c: c, obs: obs, volumesBy: perClaim}
	claims := so.servers * so.replicas

	fmt.Println(elapsed() + "Scenario 8, Kubernetes alone: warming up...")
	if err := b.useProvisioner(ctx, tarsv1beta1.NoProvisioner); err != nil {
		return nil, err
	}
	if _, err := b.timeToBound(ctx, "warmup", 2, true, false); err != nil {
		return nil, err
	}
	if err := b.cleanUp(ctx, "warmup"); err != nil {
		return nil, err
	}
	fmt.Printf(elapsed()+"Scenario 8, Kubernetes alone: %d StatefulSets applied by hand, %d volumes made as their "+
		"claims appear, each bound to its claim...\n", so.servers, claims)
	alone, err := b.timeToBound(ctx, "alone", so.servers, true, true)
	if err != nil {
		return nil, err
	}
	if err := b.cleanUp(ctx, "alone"); err != nil {
		return nil, err
	}

	small, err := b.smallFleet(ctx)
	if err != nil {
		return nil, err
	}

	fmt.Printf(elapsed()+"Scenario 8, the operator: %d TServers on %d nodes, from a fresh manager and agents...\n",
		so.servers, so.nodes)
	if err := b.startOperator(ctx); err != nil {
		return nil, err
	}
	ours, err := b.timeToBound(ctx, "ours", so.servers, false, true)
	if err != nil {
		return nil, err
	}
	printRequests("", ours, "alone", alone)
	managerPeak, managerCPU := procStats(b.manager.Pid())
	agentsRSS := b.agentsRSS(small.nodes)
	restarts, err := b.restarts(ctx, "ours")
	if err != nil {
		return nil, err
	}
	fmt.Printf("  manager: peak RSS %.1f MB in the rollout, %.1f MB after the restarts\n", managerPeak,
		restarts.managerPeak)
	managerPeak = max(managerPeak, restarts.managerPeak)
	oursRestart, aloneRestart := restarts.ours, restarts.alone
	// The restarts' figures say how they ran: with the operator's processes killed or kept.
	restart := "restart"
	if so.scaleKeepOperator {
		restart = "restart, the operator kept running"
	}

	results := []result{
		ratio(scenarioScale, "rollout: all claims Bound, all pods Running", ours.took.Seconds(),
			alone.took.Seconds(), "s", scaleTimeTarget),
		{Scenario: scenarioScale, Metric: "rollout: claims bound per second", Unit: "claims/s",
			Value: float64(ours.claims) / ours.took.Seconds(), Bound: float64(alone.claims) / alone.took.Seconds()},
		ratio(scenarioScale, "rollout: API requests per claim", ours.perClaim(), alone.perClaim(), "requests",
			scaleRequestsTarget),
		ratio(scenarioScale, restart+": every replica Running again (mean of two)",
			oursRestart.took.Seconds(), aloneRestart.took.Seconds(), "s", scaleTimeTarget),
		{Scenario: scenarioScale, Metric: restart + ": the operator's first and second", Unit: "s",
			Value: restarts.each[0].took.Seconds(), Bound: restarts.each[1].took.Seconds()},
		{Scenario: scenarioScale, Metric: restart + ": replicas on another node than before", Unit: "replicas",
			Value: float64(oursRestart.moved), Bound: float64(aloneRestart.moved), Target: "= 0",
			Met: new(oursRestart.moved == 0)},
		ratio(scenarioScale, restart+": API requests per replica", oursRestart.perClaim(), aloneRestart.perClaim(),
			"requests", scaleRequestsTarget),
		{Scenario: scenarioScale, Metric: fmt.Sprintf("manager peak RSS at %d TServers", so.servers), Unit: "MB",
			Value: managerPeak, Target: fmt.Sprintf("<= %d MB", scaleManagerRSS), Met: new(managerPeak <= scaleManagerRSS)},
		{Scenario: scenarioScale, Metric: fmt.Sprintf("manager peak RSS at %d ÷ at %d TServers", so.servers,
			scaleFirstServers), Unit: "MB", Value: managerPeak, Bound: small.managerRSS, Ratio: managerPeak / small.managerRSS},
		{Scenario: scenarioScale, Metric: "manager CPU seconds, its whole life to the restart", Unit: "s",
			Value: managerCPU},
		ratio(scenarioScale, fmt.Sprintf("agent RSS at %d nodes ÷ at %d (median agent)", so.nodes, o.scaleSmallNodes),
			median(agentsRSS), median(small.agentsRSS), "MB", scaleAgentTarget),
	}
	// A setting, not a measure: the runs' figures depend on it (--scheduler-qps).
	results = append(results, result{Scenario: scenarioScale, Metric: "kube-scheduler's client rate limit",
		Unit: "requests/s", Value: o.clientRateLimits()["kube-scheduler"]})
	for _, name := range slices.Sorted(maps.Keys(ours.cpu)) {
		results = append(results, result{Scenario: scenarioScale, Metric: "rollout: CPU seconds of " + name,
			Unit: "s", Value: ours.cpu[name], Bound: alone.cpu[name]})
	}
	if !so.scaleNoWork {
		return results, nil
	}
	// Last, and optional: what it fails to measure costs none of the figures above.
	trivial, err := b.noWorkRollout(ctx, "ours")
	if err != nil {
		return results, err
	}
	printRequests("", ours, "with a provisioner of no work", trivial)
	return append(results, noWorkResults(ours, trivial)...), nil
}

// noWorkRollout rolls the fleet out on Kubernetes with a provisioner of no work, once the
// operator is stopped and its fleet of namespace ns deleted: the StatefulSets applied by hand,
// each claim's volume made by the bench on the node the scheduler selected for it, bound to it.
// Kubernetes' own protocol of provisioning, without the operator: what the operator costs beyond
// it. It runs after the restarts, so that they run on a cluster of the same history as before
// the seventeenth run (it ran before them in the seventeenth to nineteenth runs; the twentieth,
// without it, showed that it was not what made their ratio higher).
func (b *bench) noWorkRollout(ctx context.Context, ns string) (runFigures, error) {
	if err := b.stopOperator(); err != nil {
		return runFigures{}, err
	}
	if err := b.cleanUp(ctx, ns); err != nil {
		return runFigures{}, err
	}
	fmt.Printf(elapsed()+"Scenario 8, Kubernetes with a provisioner of no work: %d StatefulSets applied by hand, "+
		"each claim's volume made on the node the scheduler selected for it...\n", b.o.servers)
	b.volumesBy = provisioned
	if err := b.useProvisioner(ctx, trivialProvisioner); err != nil {
		return runFigures{}, err
	}
	trivial, err := b.timeToBound(ctx, "provisioned", b.o.servers, true, true)
	if err != nil {
		return runFigures{}, err
	}
	return trivial, b.cleanUp(ctx, "provisioned")
}

// noWorkResults compare the operator's rollout with the no-work provisioner's: not a target, as
// Kubernetes alone of the issue has its volumes before the pods are scheduled.
func noWorkResults(ours, trivial runFigures) []result {
	results := make([]result, 0, 2+len(trivial.cpu))
	results = append(results,
		result{Scenario: scenarioScale, Metric: "rollout against a provisioner of no work", Unit: "s",
			Value: ours.took.Seconds(), Bound: trivial.took.Seconds(), Ratio: ours.took.Seconds() / trivial.took.Seconds()},
		result{Scenario: scenarioScale, Metric: "rollout: API requests per claim, against a provisioner of no work",
			Unit: "requests", Value: ours.perClaim(), Bound: trivial.perClaim(), Ratio: ours.perClaim() / trivial.perClaim()})
	for _, name := range slices.Sorted(maps.Keys(trivial.cpu)) {
		results = append(results, result{Scenario: scenarioScale,
			Metric: "rollout: CPU seconds of " + name + ", against a provisioner of no work", Unit: "s",
			Value: ours.cpu[name], Bound: trivial.cpu[name]})
	}
	return results
}

// scaleBegan is when the scale scenario began; elapsed is the time since, as its steps print it,
// so that a run shows where its half hour goes.
var scaleBegan time.Time

func elapsed() string { return fmt.Sprintf("[%s] ", time.Since(scaleBegan).Round(time.Second)) }

// smallFigures are the footprint of the operator's fleet on the few nodes.
type smallFigures struct {
	// managerRSS is the manager's peak RSS at scaleFirstServers TServers.
	managerRSS float64
	// nodes are the few nodes, and agentsRSS their agents' RSS.
	nodes     []string
	agentsRSS []float64
}

// smallFleet starts the manager and the agents, cordons every node but o.scaleSmallNodes, and
// rolls out first scaleFirstServers TServers, then as many more as give those nodes as many pods
// each as the whole fleet will give every node; it measures the manager's and those agents' RSS,
// and deletes the fleet.
func (b *bench) smallFleet(ctx context.Context) (smallFigures, error) {
	o := b.o
	var figures smallFigures
	smallNodes := b.cluster.Nodes[:min(o.scaleSmallNodes, len(b.cluster.Nodes))]
	servers := o.servers * len(smallNodes) / len(b.cluster.Nodes)
	fmt.Printf(elapsed()+"Scenario 8, the operator on %d nodes (the others cordoned): %d TServers, then %d more...\n",
		len(smallNodes), scaleFirstServers, max(0, servers-scaleFirstServers))
	if err := b.startOperator(ctx); err != nil {
		return figures, err
	}
	for _, n := range b.cluster.Nodes[len(smallNodes):] {
		if err := b.cluster.Cordon(ctx, n.Name, true); err != nil {
			return figures, err
		}
	}
	if _, err := b.timeToBound(ctx, "first", scaleFirstServers, false, false); err != nil {
		return figures, err
	}
	figures.managerRSS, _ = procStats(b.manager.Pid())
	if more := servers - scaleFirstServers; more > 0 {
		if _, err := b.timeToBound(ctx, "small", more, false, false); err != nil {
			return figures, err
		}
	}
	for _, n := range smallNodes {
		figures.nodes = append(figures.nodes, n.Name)
	}
	figures.agentsRSS = b.agentsRSS(figures.nodes)
	for _, ns := range []string{"first", "small"} {
		if err := b.cleanUp(ctx, ns); err != nil {
			return figures, err
		}
	}
	for _, n := range b.cluster.Nodes[len(smallNodes):] {
		if err := b.cluster.Cordon(ctx, n.Name, false); err != nil {
			return figures, err
		}
	}
	return figures, nil
}

// startOperator starts the manager and the agents with t-storage-class of the operator, or
// starts them anew.
func (b *bench) startOperator(ctx context.Context) error {
	if err := b.stopOperator(); err != nil {
		return err
	}
	if err := b.useProvisioner(ctx, tarsv1beta1.Provisioner); err != nil {
		return err
	}
	var err error
	if b.manager, err = b.cluster.StartManager(ctx, b.o.operator, nil); err != nil {
		return err
	}
	b.agents, err = b.cluster.StartAgents(ctx, b.o.agent, "--gc-grace-period="+b.o.gcGrace.String())
	return err
}

// agentsRSS is the RSS in MB of the agent of each of nodes, the median of readRSS's readings.
func (b *bench) agentsRSS(nodes []string) []float64 {
	rss := make([]float64, 0, len(nodes))
	for _, s := range readRSS(len(nodes), func(i int) *localcluster.Process { return b.cluster.Agent(nodes[i]) }) {
		rss = append(rss, median(s))
	}
	fmt.Printf("  agents of %d nodes: RSS %.1f to %.1f MB, median %.1f MB\n",
		len(nodes), slices.Min(rss), slices.Max(rss), median(rss))
	return rss
}

// restartRuns are the restarts of one fleet: the operator's, each and their mean (moved counts the
// replicas of both), and Kubernetes alone's between them; and the manager's peak RSS after them.
type restartRuns struct {
	each        []restartFigures
	ours, alone restartFigures
	managerPeak float64
}

// restarts restarts the operator's fleet of namespace ns three times, all on this one cluster and
// fleet: with the operator (its manager and agents killed as the pods are deleted, or kept
// running with o.scaleKeepOperator), with
// Kubernetes alone (the manager and the agents stopped before, started again after), and with
// the operator again. The same fleet and an alternating order leave Kubernetes alone's restart
// neither a younger cluster nor other objects than the operator's, and the operator's two runs
// show how far one run of the same restart moves.
func (b *bench) restarts(ctx context.Context, ns string) (restartRuns, error) {
	var runs restartRuns
	oursOnce := func(nth string) error {
		operator := "the manager and the agents killed"
		if b.o.scaleKeepOperator {
			operator = "the manager and the agents kept running"
		}
		fmt.Printf(elapsed()+"Scenario 8, the operator, %s restart: every pod deleted at once, %s...\n", nth, operator)
		// Named apart, each restart's profiles are its own.
		figures, err := b.restartAll(ctx, ns, "ours-"+nth, !b.o.scaleKeepOperator)
		if err != nil {
			return err
		}
		runs.each = append(runs.each, figures)
		// The manager took up the whole fleet at once: started again as the pods were deleted, or
		// (kept running, and started again after Kubernetes alone's restart) before it.
		peak, _ := procStats(b.manager.Pid())
		runs.managerPeak = max(runs.managerPeak, peak)
		return nil
	}
	if err := oursOnce("first"); err != nil {
		return runs, err
	}
	fmt.Println(elapsed() + "Scenario 8, Kubernetes alone, the same fleet: the manager and the agents stopped, " +
		"every pod deleted at once...")
	if err := b.stopOperator(); err != nil {
		return runs, err
	}
	var err error
	if runs.alone, err = b.restartAll(ctx, ns, "alone", false); err != nil {
		return runs, err
	}
	if err := b.startOperator(ctx); err != nil {
		return runs, err
	}
	if err := oursOnce("second"); err != nil {
		return runs, err
	}
	for i, r := range runs.each {
		printRequests(fmt.Sprintf(" (restart %d)", i+1), r.runFigures, "alone", runs.alone.runFigures)
	}
	runs.ours = meanRestart(runs.each)
	return runs, nil
}

// meanRestart is the mean of runs: their time, requests, replicas and CPU seconds; moved is
// their sum.
func meanRestart(runs []restartFigures) restartFigures {
	mean := restartFigures{runFigures: runFigures{requests: map[string]float64{}, cpu: map[string]float64{}}}
	n := float64(len(runs))
	for _, r := range runs {
		mean.took += time.Duration(float64(r.took) / n)
		mean.claims += r.claims
		for k, v := range r.requests {
			mean.requests[k] += v / n
		}
		for k, v := range r.cpu {
			mean.cpu[k] += v / n
		}
		mean.moved += r.moved
	}
	mean.claims /= max(1, len(runs))
	return mean
}

// restartFigures are what one whole-fleet restart measured.
type restartFigures struct {
	runFigures
	// moved counts replicas that came back on another node than before.
	moved int
}

// restartAll deletes every pod of namespace ns at once, as a whole-cluster restart (a power cut,
// an upgrade) leaves a cluster; with crash, the manager and the agents are killed meanwhile and
// started again after their back-off, as their kubelets would. It measures until every replica
// runs again, a new pod, and counts those on another node than before; run names it in what it
// prints and in its profiles.
func (b *bench) restartAll(ctx context.Context, ns, run string, crash bool) (restartFigures, error) {
	before := &corev1.PodList{}
	if err := b.obs.List(ctx, before, client.InNamespace(ns)); err != nil {
		return restartFigures{}, err
	}
	nodeOf := make(map[string]string, len(before.Items))
	old := make(map[types.UID]bool, len(before.Items))
	for _, pod := range before.Items {
		nodeOf[pod.Name], old[pod.UID] = pod.Spec.NodeName, true
	}
	if err := waitQuiet(ctx, b.quietCPU()); err != nil {
		return restartFigures{}, err
	}
	if b.o.profileDir != "" {
		defer b.profile(ctx, run+"-restart")()
	}
	m, err := b.startMeter(ctx)
	if err != nil {
		return restartFigures{}, err
	}
	if crash {
		for _, p := range append([]*localcluster.Process{b.manager}, b.agents...) {
			// What it used is gone with it: its run after the restart counts from 0.
			pid := p.Pid()
			name, used := component(pid), cpuSeconds(pid)
			if p.Crash() == nil { // one waiting for its restart is down already
				m.cpu[name] -= used
			}
		}
	}
	if err := b.deletePods(ctx, before.Items); err != nil {
		return restartFigures{}, err
	}
	for deadline := m.start.Add(15 * time.Minute); time.Now().Before(deadline); time.Sleep(pollEvery(len(nodeOf))) {
		pods := &corev1.PodList{}
		if err := b.obs.List(ctx, pods, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
			return restartFigures{}, err
		}
		running, moved := 0, 0
		for _, pod := range pods.Items {
			if old[pod.UID] || pod.Status.Phase != corev1.PodRunning {
				continue
			}
			running++
			if pod.Spec.NodeName != nodeOf[pod.Name] {
				moved++
			}
		}
		if running < len(nodeOf) {
			continue
		}
		figures, err := b.stop(ctx, m, running)
		if err != nil {
			return restartFigures{}, err
		}
		fmt.Printf("  %s: %d replicas Running again in %s, %d on another node (%.1f API requests per replica)\n",
			run, running, figures.took.Round(10*time.Millisecond), moved, figures.perClaim())
		printCPU(figures.cpu)
		printClients(b.o, figures)
		return restartFigures{runFigures: figures, moved: moved}, nil
	}
	return restartFigures{}, fmt.Errorf("%s: not every replica Running again after 15 minutes", ns)
}

// deletePods deletes pods at once, each as a kubelet's last delete of a pod whose containers
// stopped (no grace period, its UID as a precondition), one by one (deleteEach). Not gracefully: kwok's
// pod-delete stage deletes a pod marked for deletion by name, without its UID as a precondition,
// and under this load it came late enough to delete the StatefulSet's new pod of the same name,
// again and again (tried: 300 pods each scheduled twenty times, two minutes on).
func (b *bench) deletePods(ctx context.Context, pods []corev1.Pod) error {
	return deleteEach(ctx, len(pods), func(ctx context.Context, i int) error {
		return b.c.Delete(ctx, &pods[i], client.GracePeriodSeconds(0), client.Preconditions{UID: &pods[i].UID})
	})
}

// printRequests prints, per claim, the kinds of API requests of which ours made more or fewer
// than the run other, named otherName, the most different first; which names ours where it is
// not the only run.
func printRequests(which string, ours runFigures, otherName string, other runFigures) {
	perClaim := func(r runFigures, kind string) float64 { return r.requests[kind] / float64(max(1, r.claims)) }
	kinds := slices.Collect(maps.Keys(ours.requests))
	for kind := range other.requests {
		if _, ok := ours.requests[kind]; !ok {
			kinds = append(kinds, kind)
		}
	}
	diff := func(kind string) float64 { return perClaim(ours, kind) - perClaim(other, kind) }
	slices.SortFunc(kinds, func(a, b string) int { return cmp.Compare(math.Abs(diff(b)), math.Abs(diff(a))) })
	fmt.Printf("    API requests per claim, with the operator%s and %s, where they differ most:\n", which, otherName)
	for _, kind := range kinds[:min(10, len(kinds))] {
		fmt.Printf("      %6.2f %6.2f  %s\n", perClaim(ours, kind), perClaim(other, kind), kind)
	}
}
