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

// Scenarios 1 to 3, which measure the same runs: the time until every claim is bound and every
// pod runs, with the agents and with Kubernetes alone (1), the volumes left per bound claim (2),
// and the agents' footprint (3, footprint.go); and how a run's pods spread over the nodes and
// what events they caused (the events printed by recovery.go too).

package main

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	toolscache "k8s.io/client-go/tools/cache"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

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
		fmt.Printf("Scenario 1b, pair %d of %d: Kubernetes alone, the StatefulSets applied by hand, "+
			"volumes pre-created as the agent would create them...\n", i, o.pairs)
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
			ours.took.Seconds(), lower.took.Seconds(), "s", 1.10)
		pair.Target, pair.Met = "", nil // the median pair below is the figure
		fmt.Printf("  pair %d: %.2f s / %.2f s = %.2f; API requests per claim %.1f / %.1f\n", i,
			ours.took.Seconds(), lower.took.Seconds(), pair.Ratio, ours.perClaim(), lower.perClaim())
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
	median := slices.SortedFunc(slices.Values(pairs), func(a, b result) int {
		return cmp.Compare(a.Ratio, b.Ratio)
	})[(len(pairs)-1)/2]
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

// runFigures are what one run measured.
type runFigures struct {
	took time.Duration
	// claims is how many claims the run bound; requests, how many requests the API server
	// served meanwhile, whoever made them (watches counted as they start), by verb, resource and
	// subresource.
	claims   int
	requests map[string]float64
	// cpu is the CPU seconds each component used meanwhile (cpuByComponent).
	cpu map[string]float64
	// clients is what kube-controller-manager's and kube-scheduler's clients of the API server
	// did meanwhile (clientUses).
	clients map[string]clientUse
}

// perClaim is the API requests per claim bound of the run.
func (r runFigures) perClaim() float64 { return sum(r.requests) / float64(max(1, r.claims)) }

// meter measures a run from its start: the API server's request counters and the components'
// CPU seconds then.
type meter struct {
	start         time.Time
	requests, cpu map[string]float64
	clients       map[string]clientUse
}

// startMeter starts measuring a run.
func (b *bench) startMeter(ctx context.Context) (*meter, error) {
	requests, err := b.apiRequests(ctx)
	if err != nil {
		return nil, err
	}
	clients := b.clientUses(ctx) // before the clock starts: reading them takes a few requests
	return &meter{start: time.Now(), requests: requests, cpu: cpuByComponent(), clients: clients}, nil
}

// stop is what the run measured once it bound claims.
func (b *bench) stop(ctx context.Context, m *meter, claims int) (runFigures, error) {
	took, cpu := time.Since(m.start), cpuSince(m.cpu)
	requests, err := b.apiRequests(ctx)
	if err != nil {
		return runFigures{}, err
	}
	clients := map[string]clientUse{}
	for name, after := range b.clientUses(ctx) {
		switch before, ok := m.clients[name]; {
		case !ok:
		case after.started != before.started:
			fmt.Printf("    %s started again during the run: its clients' figures are left out\n", name)
		default:
			clients[name] = clientUse{requests: after.requests - before.requests,
				throttled: after.throttled - before.throttled, byMethod: since(after.byMethod, before.byMethod)}
		}
	}
	return runFigures{took: took, claims: claims, requests: since(requests, m.requests), cpu: cpu, clients: clients}, nil
}

// timeToBound creates servers TServers in a namespace of their own (app = name, so that no claim
// matches another run's volumes) and measures until every claim is bound and every pod runs.
// With lowerBound, the volumes are made as the agents would make them (one per
// claim, a replica's on one node, a server's replicas on different nodes; lowerBoundVolumes):
// first and unbound, for the scheduler to bind as it binds any pre-created local volume, or
// each bound to its claim as the claim appears or is given a node, as b.volumesBy says; and the
// StatefulSets the controller would make are created instead of TServers. With profile (and --profile-dir), the
// run is profiled.
func (b *bench) timeToBound(ctx context.Context, name string, servers int,
	lowerBound, profile bool) (runFigures, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := b.c.Create(ctx, ns); err != nil {
		return runFigures{}, err
	}
	volumes := servers * b.o.replicas * b.o.volumes // one per claim
	if lowerBound {
		done, err := b.lowerBoundVolumes(ctx, name, servers)
		if err != nil {
			return runFigures{}, err
		}
		defer done()
	}
	if b.o.profileDir != "" && profile {
		defer b.profile(ctx, name)()
	}
	// Both runs start on a quiet cluster: whatever was just started (caches filling) or cleaned up
	// is over, as it would be long before a real rollout.
	if err := waitQuiet(ctx, b.quietCPU()); err != nil {
		return runFigures{}, err
	}
	m, err := b.startMeter(ctx)
	if err != nil {
		return runFigures{}, err
	}
	start := m.start
	if err := b.apply(ctx, name, servers, !lowerBound && !b.o.byHand); err != nil {
		return runFigures{}, err
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
			return runFigures{}, err
		}
		if err := b.obs.List(ctx, pods, client.InNamespace(name), client.UnsafeDisableDeepCopy); err != nil {
			return runFigures{}, err
		}
		if err := b.obs.List(ctx, pvs, client.MatchingLabels{tarsv1beta1.LabelServerApp: name},
			client.UnsafeDisableDeepCopy); err != nil {
			return runFigures{}, err
		}
		statefulSets := &appsv1.StatefulSetList{}
		if err := b.obs.List(ctx, statefulSets, client.InNamespace(name), client.UnsafeDisableDeepCopy); err != nil {
			return runFigures{}, err
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
			// Available, or bound since; a volume made bound to its claim (the agents', or
			// volumePerClaim's) stays Pending until the PV controller binds it.
			if pv.Status.Phase != corev1.VolumePending {
				available++
			}
		}
		mark("all volumes exist", len(pvs.Items) >= volumes)
		mark("all volumes usable", available >= volumes)
		mark("all pods exist", len(pods.Items) == want)
		mark("all pods scheduled", scheduled == want)
		mark("all claims bound", bound == want*b.o.volumes)
		if bound == want*b.o.volumes && running == want {
			run, err := b.stop(ctx, m, bound)
			if err != nil {
				return runFigures{}, err
			}
			fmt.Printf("  %s: %d claims bound, %d pods running in %s (%.1f claims/s, %.1f API requests per claim)\n",
				name, bound, running, run.took.Round(10*time.Millisecond), float64(bound)/run.took.Seconds(),
				run.perClaim())
			for _, what := range []string{"all StatefulSets exist", "all claims exist", "all volumes exist",
				"all volumes usable", "all pods exist", "all pods scheduled", "all claims bound"} {
				fmt.Printf("    %-20s %s\n", what, milestones[what].Round(10*time.Millisecond))
			}
			printCPU(run.cpu)
			printClients(b.o, run)
			printSpread(pods.Items)
			b.printEvents(ctx, name)
			return run, nil
		}
		time.Sleep(pollEvery(want))
	}
	return runFigures{}, fmt.Errorf("%s: not all claims bound and pods running after 15 minutes", name)
}

// lowerBoundVolumes gives Kubernetes alone's run name its volumes, as b.volumesBy says: made
// before the run (precreate), or made as their claims appear or are given a node
// (volumePerClaim) until the returned function is called.
func (b *bench) lowerBoundVolumes(ctx context.Context, name string, servers int) (func(), error) {
	if b.volumesBy == precreated {
		return func() {}, b.precreate(ctx, name, servers)
	}
	stop, err := b.volumePerClaim(ctx, name, servers)
	if err != nil {
		return nil, err
	}
	return func() {
		if err := stop(); err != nil {
			fmt.Printf("    %s: %v\n", name, err)
		}
	}, nil
}

// precreate makes the volumes of the run name's servers as the agents would make them (one per
// claim, a replica's on one node, a server's replicas on different nodes), but unbound, and
// waits until the PV controller has marked every one Available: pre-created volumes are ready
// to use before the clock starts.
func (b *bench) precreate(ctx context.Context, name string, servers int) error {
	for _, p := range b.plannedVolumes(name, servers) {
		if err := b.c.Create(ctx, b.volume(p.server, p.volume, p.replica, p.node)); err != nil {
			return err
		}
	}
	return b.waitAvailable(ctx, name, servers*b.o.replicas*b.o.volumes)
}

// plannedVolume is the volume of one claim of a run: its server, volume and replica, and the
// node picked for it beforehand.
type plannedVolume struct {
	server  *tarsv1beta1.TServer
	volume  string
	replica int
	node    string
}

// plannedVolumes are the volumes of the run name's servers, by claim, as the agents would make
// them: one per claim, a replica's on one node, a server's replicas on different nodes.
func (b *bench) plannedVolumes(name string, servers int) map[string]plannedVolume {
	planned := map[string]plannedVolume{}
	for i := range servers {
		ts := b.tserver(name, name, i)
		for r := range b.o.replicas {
			node := b.cluster.Nodes[(i*b.o.replicas+r)%len(b.cluster.Nodes)]
			for _, m := range ts.Spec.K8S.Mounts {
				planned[claimName(ts, m.Name, r)] = plannedVolume{
					server: ts, volume: m.Name, replica: r, node: node.Name}
			}
		}
	}
	return planned
}

// volumePerClaim has the volume of each claim of the run name's servers made, bound to it by
// name and UID as its agent binds the volume it makes: for perClaim, the moment the claim
// appears, on the node picked beforehand (precreate's: no provisioner can know a pod's node
// before the scheduler does); for provisioned, the moment the scheduler selects a node for it
// (volume.kubernetes.io/selected-node), on that node. Made before the claims, a volume could
// name its claim without its UID only, and the scheduler and the PV controller would both write
// the volume to add it: when the scheduler lost that race it failed its pod's scheduling ("the
// object has been modified") and backed it off, which held Kubernetes alone back (2,595 of
// 3,000 pods in one run). A create that fails is tried again for a while (volumeFor), and said
// at once if it keeps failing. It returns a function that stops making volumes and says whether
// any volume could not be made.
func (b *bench) volumePerClaim(ctx context.Context, name string, servers int) (func() error, error) {
	planned := b.plannedVolumes(name, servers)
	onSelectedNode := b.volumesBy == provisioned // read here: a handler call may outlive the run
	informer, err := b.obs.GetInformer(ctx, &corev1.PersistentVolumeClaim{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	type request struct {
		claim *corev1.PersistentVolumeClaim
		node  string
	}
	var (
		mu     sync.Mutex
		queued = sets.New[string]()
	)
	// Never closed: a handler call under way may still run after the handler is removed. Each
	// claim is queued once, and the buffer holds them all.
	requests := make(chan request, len(planned))
	enqueue := func(obj any) {
		pvc, ok := obj.(*corev1.PersistentVolumeClaim)
		if !ok || pvc.Namespace != name {
			return
		}
		p, ok := planned[pvc.Name]
		if !ok {
			return
		}
		node := p.node
		if onSelectedNode {
			if node = pvc.Annotations[volumehelpers.AnnSelectedNode]; node == "" {
				return
			}
		}
		mu.Lock()
		again := queued.Has(pvc.Name)
		queued.Insert(pvc.Name)
		mu.Unlock()
		if again {
			return
		}
		select {
		case requests <- request{claim: pvc, node: node}:
		case <-ctx.Done():
		}
	}
	registration, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
	})
	if err != nil {
		cancel()
		return nil, err
	}
	var (
		workers sync.WaitGroup
		failed  error
	)
	for range volumeMakers {
		workers.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case r := <-requests:
					p := planned[r.claim.Name]
					pv := b.volume(p.server, p.volume, p.replica, r.node)
					if err := b.volumeFor(ctx, r.claim, pv); err != nil && ctx.Err() == nil {
						fmt.Printf("    %s: %v\n", name, err)
						mu.Lock()
						failed = cmp.Or(failed, err)
						mu.Unlock()
					}
				}
			}
		})
	}
	return func() error {
		removeErr := informer.RemoveEventHandler(registration)
		cancel()
		workers.Wait()
		return cmp.Or(failed, removeErr)
	}, nil
}

// volumeFor creates volume pv bound to claim pvc, trying again with back-off for about 25 s (as
// an agent's requeue would); a volume of that name bound to another claim is an error.
func (b *bench) volumeFor(ctx context.Context, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) error {
	pv.Spec.ClaimRef.UID, pv.Spec.ClaimRef.ResourceVersion = pvc.UID, pvc.ResourceVersion
	var last error
	err := wait.ExponentialBackoffWithContext(ctx, wait.Backoff{Duration: 100 * time.Millisecond, Factor: 2, Steps: 8},
		func(ctx context.Context) (bool, error) {
			last = b.c.Create(ctx, pv)
			if apierrors.IsAlreadyExists(last) {
				there := &corev1.PersistentVolume{}
				if last = b.c.Get(ctx, client.ObjectKeyFromObject(pv), there); last != nil {
					return false, nil
				}
				if ref := there.Spec.ClaimRef; ref == nil || ref.UID != pvc.UID {
					return false, fmt.Errorf("volume %s of claim %s exists already, for another claim", pv.Name, pvc.Name)
				}
			}
			return last == nil, nil
		})
	if err != nil && last != nil {
		return fmt.Errorf("volume %s of claim %s: %w", pv.Name, pvc.Name, last)
	}
	return err
}

// volumeMakers is how many volumes volumePerClaim creates at once: enough to keep up with the
// StatefulSet controller (every claim of a run was bound when the last one appeared).
const volumeMakers = 16

// pollEvery is how often a run of pods pods looks at its objects in the observer's cache: ten
// times a second, and less often for runs of more than 300 pods, lest the bench's copies of
// thousands of objects take the cores it measures.
func pollEvery(pods int) time.Duration {
	return max(100*time.Millisecond, time.Duration(pods)*time.Second/3000)
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
// the scheduler found no node for at least once (FailedScheduling; each such attempt backs a
// pod off), and why: the pods of each message, the names in it left out.
func (b *bench) printEvents(ctx context.Context, ns string) {
	list := &eventsv1.EventList{}
	if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
		fmt.Printf("    events: %v\n", err)
		return
	}
	unschedulable := sets.New[string]()
	reasons := map[string]int{}
	why := map[string]sets.Set[string]{} // the pods of each FailedScheduling message, names left out
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
			note := quoted.ReplaceAllString(e.Note, `"…"`)
			if why[note] == nil {
				why[note] = sets.New[string]()
			}
			why[note].Insert(e.Regarding.Name)
		}
	}
	lines := make([]string, 0, len(reasons))
	for _, reason := range slices.Sorted(maps.Keys(reasons)) {
		lines = append(lines, fmt.Sprintf("%s %d", reason, reasons[reason]))
	}
	fmt.Printf("    events: %s\n", strings.Join(lines, ", "))
	fmt.Printf("    pods found no node at least once: %d (%d attempts)\n",
		unschedulable.Len(), unschedulableAttempts(reasons))
	notes := slices.SortedFunc(maps.Keys(why), func(a, b string) int {
		return cmp.Or(cmp.Compare(why[b].Len(), why[a].Len()), strings.Compare(a, b))
	})
	for _, note := range notes[:min(3, len(notes))] {
		fmt.Printf("      %d pods: %s\n", why[note].Len(), note)
	}
}

// quoted matches the names a scheduler's message quotes (of a volume, a claim, a plugin).
var quoted = regexp.MustCompile(`"[^"]*"`)

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
		svc, sts := expand.Service(ts), expand.StatefulSet(ts)
		if err := b.c.Create(ctx, svc); err != nil {
			return err
		}
		if err := b.c.Create(ctx, sts); err != nil {
			return err
		}
	}
	return nil
}
