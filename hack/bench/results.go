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

// The bench's results: each figure against its lower bound, and the table they are printed in.

package main

import (
	"fmt"

	"github.com/tserver-operator/tserver-operator/internal/localcluster"
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

func ratio(scenario, metric string, value, bound float64, unit string, target float64) result {
	r := result{Scenario: scenario, Metric: metric, Value: value, Unit: unit, Bound: bound,
		Target: fmt.Sprintf("ratio <= %.2f", target)}
	if bound > 0 {
		r.Ratio = value / bound
		met := r.Ratio > 0 && r.Ratio <= target+1e-9 // nothing measured is no figure
		r.Met = &met
	}
	return r
}

func printTable(o options, results []result) {
	fmt.Println()
	if o.onShared() {
		fmt.Printf("M=%d nodes, S=%d TServers x R=%d replicas x V=%d tLocalVolumes, kube-controller-manager QPS %d, "+
			"GC grace %s\n", o.nodes, o.servers, o.replicas, o.volumes, localcluster.ControllerManagerQPS, o.gcGrace)
	}
	if o.selected["recovery"] {
		fmt.Printf("Recovery: %d nodes, one TServer of %d replicas x 1 tLocalVolume, node-loss grace %s, %d pairs\n",
			o.recoveryNodes, recoveryReplicas, o.nodeLossGrace, o.recoveryPairs)
	}
	if o.selected["scale"] {
		fmt.Printf("Scale: %d nodes (first %d), %d TServers x R=%d replicas x 1 tLocalVolume\n",
			o.scaleNodes, o.scaleSmallNodes, o.scaleServers, o.replicas)
	}
	fmt.Println()
	fmt.Printf("%-20s %-46s %10s %-9s %10s %7s %-16s %s\n",
		"scenario", "metric", "value", "unit", "bound", "ratio", "target", "met")
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
		fmt.Printf("%-20s %-46s %10.2f %-9s %10s %7s %-16s %s\n",
			r.Scenario, r.Metric, r.Value, r.Unit, bound, rat, r.Target, met)
	}
}
