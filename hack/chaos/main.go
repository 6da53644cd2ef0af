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

// Command chaos is what `make chaos` runs: on one local cluster, for each seed, a busy rollout of
// TServers with node-local volumes, first without faults and then the same with agents, the
// manager and kube-controller-manager killed and kube-apiserver restarted at random (test/chaos),
// checking that faults cost time, never data. It prints the faults by kind, the time to converge
// with faults ÷ without, and the violations of each invariant; it exits non-zero on any
// violation or a ratio above the target.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
	"github.com/tserver-operator/tserver-operator/test/chaos"
)

// ratioTarget is the most time to converge with faults may take, as a multiple of without.
const ratioTarget = 2.0

type options struct {
	binDir, operator, agent, stateDir, out string
	nodes, runs                            int
	seed                                   uint64
	baseline                               bool
	gcGrace                                time.Duration
	agentFlags, managerFlags               string
	cfg                                    chaos.Config
}

// seedRun is a seed's pair of runs.
type seedRun struct {
	Seed     uint64        `json:"seed"`
	Baseline *chaos.Report `json:"baseline,omitempty"`
	Faults   *chaos.Report `json:"faults"`
	Ratio    float64       `json:"ratio,omitempty"`
}

func main() {
	var o options
	flag.StringVar(&o.binDir, "bin-dir", "", "Directory with the Kubernetes binaries (`make kube-binaries` builds them).")
	flag.StringVar(&o.operator, "operator", "bin/tserver-operator", "The manager binary.")
	flag.StringVar(&o.agent, "agent", "bin/tserver-agent", "The node agent binary.")
	flag.StringVar(&o.stateDir, "state-dir", ".local/chaos", "The local cluster's state directory; emptied at start.")
	flag.StringVar(&o.out, "out", ".local/chaos/results.json", "Where to write the reports as JSON.")
	flag.IntVar(&o.nodes, "nodes", 10, "Simulated nodes.")
	flag.IntVar(&o.cfg.Servers, "servers", 30, "TServers per run.")
	flag.IntVar(&o.cfg.Replicas, "replicas", 3, "Replicas of each TServer at first.")
	flag.IntVar(&o.cfg.Volumes, "volumes", 2, "tLocalVolume mounts of each TServer at first.")
	flag.IntVar(&o.cfg.Changes, "changes", 24, "Changes users make during the window.")
	flag.DurationVar(&o.cfg.Window, "window", 90*time.Second, "Time over which the changes and faults are spread.")
	flag.Uint64Var(&o.seed, "seed", 1, "Seed of the first run; further runs take the next seeds.")
	flag.IntVar(&o.runs, "runs", 1, "How many seeds to run in a row.")
	flag.BoolVar(&o.baseline, "baseline", true, "Run each seed's workload without faults first, for the ratio.")
	flag.IntVar(&o.cfg.Faults.AgentKills, "agent-kills", 6, "Agents killed (SIGKILL) per run.")
	flag.IntVar(&o.cfg.Faults.ManagerKills, "manager-kills", 3, "Manager kills (SIGKILL) per run.")
	flag.IntVar(&o.cfg.Faults.ControllerManagerKills, "controller-manager-kills", 1,
		"kube-controller-manager kills (SIGKILL) per run.")
	flag.IntVar(&o.cfg.Faults.APIServerRestarts, "apiserver-restarts", 1, "kube-apiserver restarts per run.")
	flag.DurationVar(&o.gcGrace, "gc-grace-period", 10*time.Second, "The agents' grace period for unneeded volumes.")
	flag.StringVar(&o.agentFlags, "agent-flags", "",
		"More flags for every agent, separated by spaces (the end-to-end suite's: "+
			"\"--resync-period=2s --orphan-scan-interval=10s --usage-interval=2s\").")
	flag.StringVar(&o.managerFlags, "manager-flags", "",
		"More flags for the manager, separated by spaces (the end-to-end suite's: \"--node-loss-grace=5s\").")
	flag.DurationVar(&o.cfg.Timeout, "timeout", 10*time.Minute, "How long a run may take to converge after its window.")
	flag.Parse()
	if o.binDir == "" || o.nodes < o.cfg.Replicas || o.runs < 1 {
		fmt.Fprintln(os.Stderr, "--bin-dir is required, --nodes must be at least --replicas and --runs at least 1")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	runs, err := run(ctx, o)
	if len(runs) > 0 {
		printTable(o, runs)
		if werr := writeJSON(o.out, runs); werr != nil {
			fmt.Fprintf(os.Stderr, "Error: %v\n", werr)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		os.Exit(1)
	}
	if failed := failures(runs); len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "FAILED: %s\n", strings.Join(failed, "; "))
		os.Exit(1)
	}
	fmt.Println("PASSED: no invariant violated, every ratio within the target.")
}

// run starts the cluster, the manager and the agents, and runs each seed.
func run(ctx context.Context, o options) ([]seedRun, error) {
	logPath := filepath.Join(o.stateDir, "chaos.log")
	nodes := localcluster.TarsNodes(o.nodes)
	for _, n := range nodes {
		o.cfg.Nodes = append(o.cfg.Nodes, n.Name)
	}
	fmt.Printf("Starting a local cluster with %d nodes, the manager and %d agents (state in %s)...\n",
		o.nodes, o.nodes, o.stateDir)
	cluster, err := localcluster.Start(ctx, localcluster.Options{
		BinaryDir:    o.binDir,
		StateDir:     o.stateDir,
		CRDPaths:     []string{"config/crd/bases"},
		WebhookPaths: []string{"config/webhook/manifests.yaml"},
		Manifests:    []string{"config/storageclass"},
		Nodes:        nodes,
		Notices:      os.Stdout,
	})
	if err != nil {
		return nil, err
	}
	defer func() { _ = cluster.Stop() }()
	if _, err := cluster.StartManager(ctx, o.operator, nil, strings.Fields(o.managerFlags)...); err != nil {
		return nil, err
	}
	agentFlags := append([]string{"--gc-grace-period=" + o.gcGrace.String()}, strings.Fields(o.agentFlags)...)
	if _, err := cluster.StartAgents(ctx, o.agent, agentFlags...); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tarsv1beta1.AddToScheme(scheme)
	c, err := client.New(cluster.Config, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer func() { _ = logFile.Close() }()
	fmt.Printf("What each run does is logged in %s; component logs in %s\n", logPath, cluster.LogDir)

	cfg := o.cfg
	cfg.Cluster, cfg.Client, cfg.GCGrace, cfg.Log = cluster, c, o.gcGrace, io.MultiWriter(logFile, verboseLines{})
	var runs []seedRun
	for i := range o.runs {
		seed := o.seed + uint64(i)
		sr := seedRun{Seed: seed}
		cfg.Seed = seed
		if o.baseline {
			calm := cfg
			calm.Namespace, calm.Faults = fmt.Sprintf("chaos-%d-calm", seed), chaos.Faults{}
			fmt.Printf("Seed %d: the workload without faults...\n", seed)
			if sr.Baseline, err = chaos.Run(ctx, calm); err != nil {
				return append(runs, sr), fmt.Errorf("seed %d without faults: %w", seed, err)
			}
			fmt.Printf("  converged in %s, %d violations\n",
				sr.Baseline.Converged.Round(100*time.Millisecond), sr.Baseline.ViolationCount())
		}
		cfg.Namespace = fmt.Sprintf("chaos-%d-faults", seed)
		fmt.Printf("Seed %d: the same workload with %d faults...\n", seed, cfg.Faults.Total())
		if sr.Faults, err = chaos.Run(ctx, cfg); err != nil {
			return append(runs, sr), fmt.Errorf("seed %d with faults: %w", seed, err)
		}
		fmt.Printf("  converged in %s, %d violations\n",
			sr.Faults.Converged.Round(100*time.Millisecond), sr.Faults.ViolationCount())
		if sr.Baseline != nil && sr.Baseline.Converged > 0 {
			sr.Ratio = sr.Faults.Converged.Seconds() / sr.Baseline.Converged.Seconds()
		}
		runs = append(runs, sr)
	}
	return runs, nil
}

// verboseLines echoes a run's faults and violations to the terminal, the rest staying in the log.
type verboseLines struct{}

func (verboseLines) Write(b []byte) (int, error) {
	if line := string(b); strings.Contains(line, "fault:") || strings.Contains(line, "VIOLATION") {
		fmt.Print("  " + line)
	}
	return len(b), nil
}

// failures lists what failed the targets.
func failures(runs []seedRun) []string {
	var failed []string
	for _, sr := range runs {
		for _, r := range []*chaos.Report{sr.Baseline, sr.Faults} {
			if r != nil && r.ViolationCount() > 0 {
				failed = append(failed, fmt.Sprintf("seed %d: %d invariant violations", sr.Seed, r.ViolationCount()))
			}
		}
		if sr.Ratio > ratioTarget {
			failed = append(failed, fmt.Sprintf("seed %d: converging took %.2f× as long with faults (target ≤ %.1f×)",
				sr.Seed, sr.Ratio, ratioTarget))
		}
	}
	return failed
}

// printTable prints the faults by kind, the times to converge and their ratio, and every
// invariant's checks and violations, per seed.
func printTable(o options, runs []seedRun) {
	fmt.Printf("\nChaos: %d nodes, %d TServers × %d replicas × %d tLocalVolume mounts, %d changes over %s, per seed\n\n",
		o.nodes, o.cfg.Servers, o.cfg.Replicas, o.cfg.Volumes, o.cfg.Changes, o.cfg.Window)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	var header strings.Builder
	header.WriteString("\t")
	for _, sr := range runs {
		fmt.Fprintf(&header, "seed %d\t", sr.Seed)
	}
	_, _ = fmt.Fprintln(w, header.String())
	row := func(name string, cell func(seedRun) string) {
		var line strings.Builder
		line.WriteString(name + "\t")
		for _, sr := range runs {
			line.WriteString(cell(sr) + "\t")
		}
		_, _ = fmt.Fprintln(w, line.String())
	}
	var faultKinds, changeKinds []string
	for _, sr := range runs {
		if sr.Faults == nil {
			continue
		}
		for k := range sr.Faults.Faults {
			faultKinds = appendNew(faultKinds, k)
		}
		for k := range sr.Faults.Changes {
			changeKinds = appendNew(changeKinds, k)
		}
	}
	slices.Sort(faultKinds)
	slices.Sort(changeKinds)
	for _, k := range faultKinds {
		row("fault: "+k, func(sr seedRun) string {
			return count(sr.Faults, func(r *chaos.Report) int { return r.Faults[k] })
		})
	}
	for _, k := range changeKinds {
		row("change: "+k, func(sr seedRun) string {
			return count(sr.Faults, func(r *chaos.Report) int { return r.Changes[k] })
		})
	}
	row("converged without faults (settled after the window)", func(sr seedRun) string { return converged(sr.Baseline) })
	row("converged with faults (settled after the window)", func(sr seedRun) string { return converged(sr.Faults) })
	row(fmt.Sprintf("with ÷ without (target ≤ %.1f)", ratioTarget), func(sr seedRun) string {
		if sr.Ratio == 0 {
			return "-"
		}
		return fmt.Sprintf("%.2f", sr.Ratio)
	})
	for _, inv := range chaos.Invariants {
		row("violations: "+inv, func(sr seedRun) string {
			v, checks := 0, 0
			for _, r := range []*chaos.Report{sr.Baseline, sr.Faults} {
				if r != nil {
					v, checks = v+r.Violations[inv], checks+r.Checks[inv]
				}
			}
			return fmt.Sprintf("%d of %d", v, checks)
		})
	}
	_ = w.Flush()
	for _, sr := range runs {
		for _, r := range []*chaos.Report{sr.Baseline, sr.Faults} {
			if r != nil {
				for _, d := range r.Details {
					fmt.Printf("seed %d: %s\n", sr.Seed, d)
				}
			}
		}
	}
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func count(r *chaos.Report, f func(*chaos.Report) int) string {
	if r == nil {
		return "-"
	}
	return fmt.Sprint(f(r))
}

func converged(r *chaos.Report) string {
	switch {
	case r == nil:
		return "-"
	case r.Converged == 0:
		return "did not"
	}
	return fmt.Sprintf("%s (%s)", r.Converged.Round(100*time.Millisecond), r.Settled.Round(100*time.Millisecond))
}

// writeJSON writes the reports to file.
func writeJSON(file string, runs []seedRun) error {
	data, err := json.MarshalIndent(runs, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return errors.Join(os.WriteFile(file, data, 0o644))
}
