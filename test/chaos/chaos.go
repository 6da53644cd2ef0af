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

// Package chaos drives a busy rollout of TServers with node-local volumes on a local cluster
// (internal/localcluster) while it injects faults: agents, the manager and
// kube-controller-manager killed outright (the cluster starts them again, as a kubelet would),
// kube-apiserver restarted. All along it checks that faults cost time, never data: a sentinel
// file in every bound volume stays while its claim exists, no Bound volume's directory goes, no
// claim gets two volumes, no volume outlives its claim past the grace, every TServer converges,
// no component panics. `make chaos` (hack/chaos) runs it at scale; the end-to-end suite runs a
// short version.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

// App is the spec.app of every TServer a run makes; servers are s0, s1, ...
const App = "chaos"

// Config is one run: a workload in a namespace of its own, with or without faults.
type Config struct {
	// Cluster runs the manager (StartManager) and the agents (StartAgents).
	Cluster *localcluster.Cluster
	// Client is an uncached client of the cluster, for core kinds and TServers.
	Client client.Client
	// Namespace is created for the run and deleted at its end.
	Namespace string
	// Nodes are the nodes the servers may run on (labelled tars.io/SupportLocalVolume); their
	// agents are the ones killed, and no server gets more replicas than there are nodes.
	Nodes []string
	// Servers, Replicas and Volumes shape the workload: that many TServers, each with that many
	// replicas and tLocalVolume mounts at first.
	Servers, Replicas, Volumes int
	// Changes is how many changes users make during Window, after the TServers are created:
	// scale up and down, uid/gid/mode edits, mounts added and removed, host networking toggled,
	// TServers deleted and created again, claims deleted with their pods.
	Changes int
	// Window is the time over which the changes and the faults are spread.
	Window time.Duration
	// Seed makes the changes and the faults (kinds, times, targets drawn at random) reproducible.
	Seed uint64
	// Faults is how many faults of each kind to inject during Window; none for a baseline.
	Faults Faults
	// GCGrace is the agents' --gc-grace-period: a volume whose claim is gone must be gone after it.
	GCGrace time.Duration
	// Timeout bounds the wait for the workload to converge after Window.
	Timeout time.Duration
	// Customize, when not nil, changes each TServer before it is created (a node selector, say).
	Customize func(*tarsv1beta1.TServer)
	// Log is told what happens, a line at a time.
	Log io.Writer
}

// Faults counts the faults of each kind a run injects.
type Faults struct {
	// AgentKills SIGKILL a node's agent, preferably one provisioning or cleaning up a volume.
	AgentKills int
	// ManagerKills SIGKILL the manager (controller and webhooks).
	ManagerKills int
	// ControllerManagerKills SIGKILL kube-controller-manager (StatefulSets, PV binder, garbage collector).
	ControllerManagerKills int
	// APIServerRestarts stop kube-apiserver and start it again.
	APIServerRestarts int
}

// Total is how many faults there are.
func (f Faults) Total() int {
	return f.AgentKills + f.ManagerKills + f.ControllerManagerKills + f.APIServerRestarts
}

// Report is what a run saw.
type Report struct {
	Seed uint64
	// Faults counts the faults injected by kind ("agent SIGKILL while provisioning", ...).
	Faults map[string]int
	// Changes counts the users' changes made by kind.
	Changes map[string]int
	// Converged is the time from the first create until every TServer had converged (zero if
	// it did not within the timeout); Settled the part of it after the last change was made and
	// the last fault was over.
	Converged, Settled time.Duration
	// Checks counts, per invariant, how many times it was checked (objects × samples);
	// Violations how many times it did not hold (each object once); Details says which.
	Checks, Violations map[string]int
	Details            []string
}

// Invariants, the keys of Report.Checks and Report.Violations.
const (
	SentinelKept        = "sentinel file kept while its claim exists"
	ClaimsKept          = "no claim deleted but by a user or for a mount removed"
	BoundDirectoryKept  = "directory of a Bound volume never removed"
	OneVolumePerClaim   = "never two volumes for one claim"
	NoVolumeAfterGrace  = "no volume without a claim after the grace"
	EveryServerConverge = "every TServer converges"
	NoPanic             = "no panic in any log"
)

// Invariants lists them in the order a report prints them.
var Invariants = []string{SentinelKept, ClaimsKept, BoundDirectoryKept, OneVolumePerClaim, NoVolumeAfterGrace,
	EveryServerConverge, NoPanic}

// ViolationCount is the sum of a report's violations.
func (r *Report) ViolationCount() int {
	n := 0
	for _, v := range r.Violations {
		n += v
	}
	return n
}

// Run runs the workload of cfg with its faults, checks the invariants all along and at the end,
// then deletes the namespace and checks that every volume goes with it. An error means the run
// could not be carried out; violations are in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Nodes) == 0 || cfg.Servers < 1 || cfg.Replicas < 1 || cfg.Volumes < 1 {
		return nil, fmt.Errorf("chaos: nodes, servers, replicas and volumes must be at least 1")
	}
	if cfg.Replicas > len(cfg.Nodes) {
		return nil, fmt.Errorf("chaos: %d replicas need as many nodes, not %d (replicas of a server never share a node)",
			cfg.Replicas, len(cfg.Nodes))
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	// Two sources, so that the changes are the same with faults as without.
	r := &run{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x7a5)), faultRng: rand.New(rand.NewPCG(cfg.Seed, 0xfa17)),
		want: map[string]*tarsv1beta1.TServer{}, userDeleted: map[types.UID]bool{},
		report: &Report{Seed: cfg.Seed, Faults: map[string]int{}, Changes: map[string]int{},
			Checks: map[string]int{}, Violations: map[string]int{}}}
	r.check = newChecker(r)
	if err := r.check.markLogs(); err != nil {
		return nil, err
	}
	if err := retry(ctx, func() error {
		return cfg.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cfg.Namespace}})
	}); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", cfg.Namespace, err)
	}
	events := r.schedule()

	checkCtx, stopChecks := context.WithCancel(ctx)
	var checks sync.WaitGroup
	checks.Go(func() { r.check.loop(checkCtx) })
	start := time.Now()
	r.logf("creating %d TServers (%d replicas, %d tLocalVolume mounts each) in %s", cfg.Servers, cfg.Replicas,
		cfg.Volumes, cfg.Namespace)
	err := r.createAll(ctx)
	for _, e := range events {
		if err != nil {
			break
		}
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(time.Until(start.Add(e.at))):
		}
		if err != nil {
			break
		}
		if e.fault != "" {
			// Faults do not wait for each other nor hold the changes up (a restart of the API
			// server takes seconds).
			r.faults.Go(func() { r.inject(ctx, e.fault) })
			continue
		}
		err = r.change(ctx, e)
	}
	r.faults.Wait()
	if err == nil {
		r.logf("every change made and fault over; waiting for the workload to converge")
		calm := time.Now()
		var took time.Duration
		if took, err = r.check.waitConverged(ctx, start, cfg.Timeout); err == nil && took > 0 {
			r.report.Converged, r.report.Settled = took, time.Since(calm)
			r.logf("converged %s after the first create, %s after the last change or fault",
				took.Round(100*time.Millisecond), r.report.Settled.Round(100*time.Millisecond))
		}
	}
	stopChecks()
	checks.Wait()
	if err != nil && ctx.Err() == nil {
		return r.report, err
	}
	if ctx.Err() != nil {
		return r.report, ctx.Err()
	}
	r.check.final(ctx)
	if err := r.cleanUp(ctx); err != nil {
		return r.report, err
	}
	r.check.scanLogs()
	return r.report, nil
}

// run is the state of one Run.
type run struct {
	cfg Config
	// rng draws the changes, faultRng the faults (times and targets).
	rng, faultRng *rand.Rand
	report        *Report
	check         *checker
	// mu guards want (each TServer as the users last applied it), report's counts and logs.
	mu   sync.Mutex
	want map[string]*tarsv1beta1.TServer
	// extraMounts numbers the mounts users add; userDeleted are the claims users deleted.
	extraMounts int
	userDeleted map[types.UID]bool
	// cleanupKills is how many agent kills are kept for the cleanup of a claim a user deletes.
	cleanupKills int
	// faults are the faults under way.
	faults sync.WaitGroup
}

// deletedByUser says whether a user of the run deleted the claim of that uid.
func (r *run) deletedByUser(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.userDeleted[uid]
}

// hasMount says whether server, as users last applied it, has the tLocalVolume mount.
func (r *run) hasMount(server, mount string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ts := r.want[tarsv1beta1.ResourceName(App, server)]
	return ts != nil && slices.ContainsFunc(ts.Spec.K8S.Mounts, func(m tarsv1beta1.TK8SMount) bool {
		return m.Name == mount && m.Source.TLocalVolume != nil
	})
}

func (r *run) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = fmt.Fprintf(r.cfg.Log, "%s [%s] %s\n", time.Now().Format("15:04:05.000"), r.cfg.Namespace,
		fmt.Sprintf(format, args...))
}

// count adds one to a report's count.
func (r *run) count(m map[string]int, key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m[key]++
}

// tserver is server i as created: Replicas replicas, Volumes tLocalVolume mounts.
func (r *run) tserver(i int) *tarsv1beta1.TServer {
	server := fmt.Sprintf("s%d", i)
	ts := &tarsv1beta1.TServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: r.cfg.Namespace, Name: tarsv1beta1.ResourceName(App, server)},
		Spec: tarsv1beta1.TServerSpec{
			App: App, Server: server, SubType: tarsv1beta1.SubTypeNormal,
			// A port of its own: with host networking, servers on one node must not share one.
			Normal: &tarsv1beta1.TServerNormal{Ports: []tarsv1beta1.TServerPort{
				{Name: "http", Port: int32(10000 + i), IsTcp: true},
			}},
			Release: &tarsv1beta1.TServerRelease{ID: "v1", Image: "chaos/" + server + ":v1"},
			K8S:     tarsv1beta1.TServerK8S{Replicas: int32(r.cfg.Replicas)},
		},
	}
	for v := range r.cfg.Volumes {
		ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, localMount(fmt.Sprintf("data%d", v)))
	}
	if r.cfg.Customize != nil {
		r.cfg.Customize(ts)
	}
	return ts
}

// localMount is a tLocalVolume mount named name, mounted at /name, owned by 1000:0 mode 755.
func localMount(name string) tarsv1beta1.TK8SMount {
	return tarsv1beta1.TK8SMount{Name: name, MountPath: "/" + name, Source: tarsv1beta1.TK8SMountSource{
		TLocalVolume: &tarsv1beta1.TLocalVolume{UID: "1000", GID: "0", Mode: "755"}}}
}

// createAll creates every TServer.
func (r *run) createAll(ctx context.Context) error {
	for i := range r.cfg.Servers {
		ts := r.tserver(i)
		r.mu.Lock()
		r.want[ts.Name] = ts.DeepCopy()
		r.mu.Unlock()
		err := retry(ctx, func() error { return r.cfg.Client.Create(ctx, ts.DeepCopy()) })
		if err != nil && !apierrors.IsAlreadyExists(err) { // made by an attempt whose answer was lost
			return fmt.Errorf("creating TServer %s: %w", ts.Name, err)
		}
	}
	return nil
}

// wanted is a copy of every TServer as the users last applied it, by name.
func (r *run) wanted() map[string]*tarsv1beta1.TServer {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*tarsv1beta1.TServer, len(r.want))
	for name, ts := range r.want {
		out[name] = ts.DeepCopy()
	}
	return out
}

// cleanUp deletes the namespace and waits until it is gone and every volume of its claims too:
// a volume still there GCGrace and a minute after its namespace is gone is a violation.
func (r *run) cleanUp(ctx context.Context) error {
	r.logf("deleting namespace %s; each of its volumes must go with its claim", r.cfg.Namespace)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.cfg.Namespace}}
	if err := retry(ctx, func() error { return client.IgnoreNotFound(r.cfg.Client.Delete(ctx, ns)) }); err != nil {
		return err
	}
	for {
		err := r.cfg.Client.Get(ctx, client.ObjectKeyFromObject(ns), ns)
		if apierrors.IsNotFound(err) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	r.check.volumesGone(ctx, r.cfg.GCGrace+time.Minute)
	return nil
}

// retry calls f until it succeeds, fails in a way that trying again cannot change, or ctx ends:
// during a fault the API server refuses connections and webhooks are not served.
func retry(ctx context.Context, f func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err) || apierrors.IsInvalid(err) ||
			apierrors.IsBadRequest(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// event is a change or a fault at a time after the first create.
type event struct {
	at     time.Duration
	change string
	fault  string
	server int
}

// schedule draws the run's events from its seed: Changes changes, every kind once before any
// twice, and the faults, each at a time uniformly in Window (a first agent and manager kill early,
// in the midst of the first provisioning).
func (r *run) schedule() []event {
	var events []event
	kinds := slices.Clone(changeKinds)
	for i := range r.cfg.Changes {
		if i%len(kinds) == 0 {
			r.rng.Shuffle(len(kinds), func(a, b int) { kinds[a], kinds[b] = kinds[b], kinds[a] })
		}
		events = append(events, event{at: r.at(r.rng, 0.1, 1), change: kinds[i%len(kinds)],
			server: r.rng.IntN(r.cfg.Servers)})
	}
	// add adds n faults of kind; with early, the first lands in the first twentieth of the
	// window, amid the first provisioning.
	add := func(kind string, n int, early bool) {
		for i := range n {
			at := r.at(r.faultRng, 0.05, 1)
			if early && i == 0 {
				at = r.at(r.faultRng, 0, 0.05)
			}
			events = append(events, event{at: at, fault: kind})
		}
	}
	f := r.cfg.Faults
	if f.AgentKills >= 2 {
		// One kill lands amid a cleanup: as a user's deletion of a claim releases its volume.
		r.cleanupKills = 1
	}
	add(faultAgent, f.AgentKills-r.cleanupKills, true)
	add(faultManager, f.ManagerKills, true)
	add(faultControllerManager, f.ControllerManagerKills, false)
	add(faultAPIServer, f.APIServerRestarts, false)
	slices.SortStableFunc(events, func(a, b event) int { return int(a.at - b.at) })
	return events
}

// at is a time drawn from rng uniformly between fractions lo and hi of the window.
func (r *run) at(rng *rand.Rand, lo, hi float64) time.Duration {
	return time.Duration((lo + (hi-lo)*rng.Float64()) * float64(r.cfg.Window))
}
