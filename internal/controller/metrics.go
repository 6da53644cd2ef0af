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

package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

var (
	// replicasFreed counts the replicas freed from a lost node, by how the node was lost.
	replicasFreed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tserver_node_loss_replicas_freed_total",
		Help: "Replicas freed from a lost node to start elsewhere with new volumes, by reason " +
			"(NodeDeleted, NodeOutOfService).",
	}, []string{"reason"})

	// lostVolumesDeleted counts the volumes no claim held on a lost node that the manager deleted.
	lostVolumesDeleted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tserver_node_loss_volumes_deleted_total",
		Help: "Node-local volumes that no claim held (Available, Released) deleted because their node is gone; " +
			"their directories stay on that node's disk.",
	})

	// claimsPending is how many claims of each TServer wait for a volume.
	claimsPending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_claims_pending",
		Help: "Claims of a TServer that are Pending (no volume bound yet), as of its last reconcile; " +
			"absent for a TServer with none.",
	}, []string{"namespace", "tserver"})

	// replicasWaiting is how many replicas wait on a node that is gone or not Ready.
	replicasWaiting = &waitingReplicas{desc: prometheus.NewDesc("tserver_node_loss_replicas_waiting",
		"Replicas held by their node-local volumes to a node that is gone or not Ready and not freed, by reason "+
			"(NodeNotReady, NodeOutOfServiceButReady, NodeDeleted within the grace, NodeLossPolicyWait).",
		[]string{"reason"}, nil)}
)

func init() {
	for _, reason := range []string{tarsv1beta1.ReasonNodeDeleted, tarsv1beta1.ReasonNodeOutOfService} {
		replicasFreed.WithLabelValues(reason)
	}
	metrics.Registry.MustRegister(replicasFreed, lostVolumesDeleted, replicasWaiting, claimsPending)
}

// waitingReplicas collects, from the last reconcile of each TServer, its replicas that wait on
// a node, by reason.
type waitingReplicas struct {
	desc     *prometheus.Desc
	mu       sync.Mutex
	byServer map[types.NamespacedName]map[string]int
}

// set records the waits of the TServer key; none forgets it.
func (w *waitingReplicas) set(key types.NamespacedName, waits []nodeWait) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(waits) == 0 {
		delete(w.byServer, key)
		return
	}
	if w.byServer == nil {
		w.byServer = map[types.NamespacedName]map[string]int{}
	}
	counts := map[string]int{}
	for _, wait := range waits {
		counts[wait.reason()]++
	}
	w.byServer[key] = counts
}

// Describe implements prometheus.Collector.
func (w *waitingReplicas) Describe(ch chan<- *prometheus.Desc) { ch <- w.desc }

// Collect implements prometheus.Collector.
func (w *waitingReplicas) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	totals := map[string]int{
		tarsv1beta1.ReasonNodeNotReady:             0,
		tarsv1beta1.ReasonNodeOutOfServiceButReady: 0,
		tarsv1beta1.ReasonNodeDeleted:              0,
		tarsv1beta1.ReasonNodeLossPolicyWait:       0,
	}
	for _, counts := range w.byServer {
		for reason, n := range counts {
			totals[reason] += n
		}
	}
	w.mu.Unlock()
	for reason, n := range totals {
		ch <- prometheus.MustNewConstMetric(w.desc, prometheus.GaugeValue, float64(n), reason)
	}
}

// setClaimsPending records how many of claims (a TServer's, key) are Pending; none or nil forgets
// the TServer.
func setClaimsPending(key types.NamespacedName, claims []corev1.PersistentVolumeClaim) {
	pending := 0
	for i := range claims {
		if claims[i].Status.Phase == corev1.ClaimPending && claims[i].DeletionTimestamp.IsZero() {
			pending++
		}
	}
	if pending == 0 {
		claimsPending.DeleteLabelValues(key.Namespace, key.Name)
		return
	}
	claimsPending.WithLabelValues(key.Namespace, key.Name).Set(float64(pending))
}
