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

package e2e

import (
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/test/chaos"
)

// schedulerRetry is how long kube-scheduler may keep a pod it found unschedulable before it tries
// the pod again with no event to prompt it (its default podMaxInUnschedulablePodsDuration). It
// looks for such pods every 30 s, and the replica then needs its volumes and to start: the spec
// waits 2 minutes more.
const schedulerRetry = 5 * time.Minute

// The short version of `make chaos`: a few servers changed by users while every kind of fault
// hits, at times and targets drawn from Ginkgo's seed (rerun one with --ginkgo.seed).
//
// The wait for convergence outlasts schedulerRetry. Once in about 60 runs (seed 3017) a replica
// stayed unscheduled for the 3 minutes this waited then: a replica whose claim a user deleted,
// replaced seconds after kube-apiserver came back. Its cause is not confirmed: first thought the
// scheduler's queue, which schedulerRetry bounds; a slow run since (seed 3107, 2 min 22 s) had
// the wait in kube-controller-manager's StatefulSet controller, which made the new pod late
// (docs/reliability.md). A replica that never comes back still fails the spec.
var _ = Describe("Faults during a rollout", func() {
	It("converges after agents, the manager and kube-controller-manager are killed and kube-apiserver restarts, "+
		"losing nothing", func() {
		seed := uint64(GinkgoRandomSeed())
		report, err := chaos.Run(ctx, chaos.Config{
			Cluster: cluster, Client: k8sClient, Namespace: fmt.Sprintf("chaos-e2e-%d", seed),
			Nodes: eligibleNodes, Servers: 3, Replicas: 2, Volumes: 1, Changes: 8, Window: 30 * time.Second, Seed: seed,
			Faults:  chaos.Faults{AgentKills: 3, ManagerKills: 2, ControllerManagerKills: 1, APIServerRestarts: 1},
			GCGrace: gcGrace, Timeout: schedulerRetry + 2*time.Minute,
			Customize: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.NodeSelector = append(ts.Spec.K8S.NodeSelector, awayFromLossPool)
			},
			Log: GinkgoWriter,
		})
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("seed %d: faults %v, changes %v, converged in %s (%s after the window), checks %v\n",
			seed, report.Faults, report.Changes, report.Converged, report.Settled, report.Checks)
		if len(report.Details) > 0 { // whole: Gomega would cut a long list short
			Fail(fmt.Sprintf("invariants violated (seed %d): %s", seed, strings.Join(report.Details, "; ")))
		}
		Expect(report.ViolationCount()).To(BeZero())
		if report.Settled > 3*time.Minute { // passes, but says so: the slow path above, or a new one
			AddReportEntry("SLOW convergence", fmt.Sprintf("seed %d converged %s after the last change or fault",
				seed, report.Settled.Round(time.Second)))
		}
		Expect(report.Converged).NotTo(BeZero())
		for _, invariant := range chaos.Invariants {
			Expect(report.Checks).To(HaveKeyWithValue(invariant, BeNumerically(">", 0)), "never checked: %s", invariant)
		}
		for kind, n := range report.Faults {
			Expect(strings.HasSuffix(kind, " failed")).To(BeFalse(), "%d faults failed: %s", n, kind)
		}
		Expect(report.Faults).To(HaveKeyWithValue("kube-apiserver restart", 1))
		Expect(report.Faults).To(HaveKeyWithValue("kube-controller-manager SIGKILL", 1))
	})
})
