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

// Scenario 3: the agents' footprint, of scenario 1's runs and with unrelated claims and volumes.

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

const scenarioFootprint = "3 agent footprint"

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
	out = append(out, result{Scenario: scenarioFootprint, Metric: "CPU seconds per agent (max of agents)",
		Value: maxCPU, Unit: "s"})

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
	out = append(out, result{Scenario: scenarioFootprint,
		Metric: fmt.Sprintf("RSS with %d unrelated objects", b.o.unrelated), Value: loaded, Unit: "MB",
		Bound: base, Ratio: loaded / base, Target: "ratio <= 1.10", Met: new(loaded/base <= 1.10)})
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
	samples := readRSS(1, func(int) *localcluster.Process { return p })[0]
	peak, _ := procStats(p.Pid())
	rss := median(samples)
	fmt.Printf("  agent %s: RSS %.1f MB (median of 10 s; %.1f to %.1f; peak %.1f MB)\n",
		name, rss, slices.Min(samples), slices.Max(samples), peak)
	return rss, nil
}

// readRSS reads the RSS in MB of n processes (process(i) is the i-th, or nil while it is not
// running) 40 times over ten seconds: a small Go heap is collected every few seconds and its
// freed pages go back to the system a little later, so one reading lands anywhere in that cycle
// where the median of these does not.
func readRSS(n int, process func(i int) *localcluster.Process) [][]float64 {
	samples := make([][]float64, n)
	for range 40 {
		for i := range n {
			if p := process(i); p != nil {
				samples[i] = append(samples[i], currentRSS(p.Pid()))
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return samples
}

// median is the median of values (the upper one of an even count), 0 of none.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	sorted := slices.Sorted(slices.Values(values))
	return sorted[len(sorted)/2]
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
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources: corev1.VolumeResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				},
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
