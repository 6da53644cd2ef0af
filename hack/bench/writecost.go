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
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

const scenarioWriteCost = "5 status write cost"

// writeCostObjects and writeCostWrites: the writes go round that many objects of each kind.
const (
	writeCostObjects = 10
	writeCostWrites  = 300
)

// writeCost measures the CPU one status write of a TServer costs the cluster (API server, etcd,
// and every process watching TServers), against one merge patch of a ConfigMap (the results'
// lower bound): the reason the controller spaces out status writes that only report progress.
// Each kind is written writeCostWrites times in a row, twice, alternating, on a quiet cluster;
// the patches are the controller's kind of progress report (ready replicas and the Ready
// condition's message).
func (b *bench) writeCost(ctx context.Context) ([]result, error) {
	const ns = "writecost"
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return nil, err
	}
	defer func() {
		if _, err := b.deleteAndWait(ctx, ns, map[string]string{tarsv1beta1.LabelServerApp: ns}, 5*time.Minute); err != nil {
			fmt.Printf("  cleaning up %s: %v\n", ns, err)
		}
	}()
	names := make([]string, 0, writeCostObjects) // of each TServer and its ConfigMap
	for i := range writeCostObjects {
		ts := b.tserver(ns, ns, i)
		names = append(names, ts.Name)
		ts.Spec.K8S.Replicas = 0 // the TServer as the bench's, without pods to run
		if err := b.c.Create(ctx, ts); err != nil {
			return nil, err
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ts.Name},
			Data: map[string]string{"n": "0"}}
		if err := b.c.Create(ctx, cm); err != nil {
			return nil, err
		}
	}
	// The controller's own status first (a server of no replicas is ready at once), so that the
	// objects are as the controller leaves them.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true,
		func(ctx context.Context) (bool, error) {
			list := &tarsv1beta1.TServerList{}
			if err := b.c.List(ctx, list, client.InNamespace(ns)); err != nil {
				return false, err
			}
			for _, ts := range list.Items {
				if len(ts.Status.Conditions) == 0 {
					return false, nil
				}
			}
			return len(list.Items) == writeCostObjects, nil
		})
	if err != nil {
		return nil, fmt.Errorf("waiting for the controller's status of the write-cost TServers: %w", err)
	}
	if err := waitQuiet(ctx, b.quietCPU()); err != nil {
		return nil, err
	}

	write := map[string]func(i int) error{
		"TServer status": func(i int) error {
			ts := &tarsv1beta1.TServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: names[i%writeCostObjects]}}
			patch := fmt.Sprintf(`{"status":{"readyReplicas":%d,"conditions":[{"type":%q,"status":"False",`+
				`"reason":"ReplicasNotReady","message":"%d of %d replicas ready",`+
				`"lastTransitionTime":"2026-12-03T00:00:00Z","observedGeneration":1}]}}`,
				i, tarsv1beta1.ConditionReady, i, i+1)
			return b.c.Status().Patch(ctx, ts, client.RawPatch(types.MergePatchType, []byte(patch)))
		},
		"ConfigMap": func(i int) error {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: names[i%writeCostObjects]}}
			return b.c.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(fmt.Sprintf(`{"data":{"n":"%d"}}`, i))))
		},
	}
	apiServer, all := map[string]float64{}, map[string]float64{}
	for range 2 {
		for _, kind := range []string{"ConfigMap", "TServer status"} {
			before := cpuByComponent()
			for i := range writeCostWrites {
				if err := write[kind](i); err != nil {
					return nil, fmt.Errorf("%s write: %w", kind, err)
				}
			}
			// What the watchers do with the last writes.
			time.Sleep(300 * time.Millisecond)
			used := cpuSince(before)
			apiServer[kind] += used[apiServerName]
			all[kind] += sum(used)
			fmt.Printf("  %d %s writes: ", writeCostWrites, kind)
			printCPU(used)
		}
	}
	perWrite := func(cpu map[string]float64, kind string) float64 { return 1000 * cpu[kind] / (2 * writeCostWrites) }
	return []result{
		{Scenario: scenarioWriteCost, Metric: "API server CPU per TServer status write",
			Value: perWrite(apiServer, "TServer status"), Bound: perWrite(apiServer, "ConfigMap"), Unit: "ms",
			Ratio: apiServer["TServer status"] / apiServer["ConfigMap"]},
		{Scenario: scenarioWriteCost, Metric: "all processes' CPU per TServer status write",
			Value: perWrite(all, "TServer status"), Bound: perWrite(all, "ConfigMap"), Unit: "ms",
			Ratio: all["TServer status"] / all["ConfigMap"]},
	}, nil
}
