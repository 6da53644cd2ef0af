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

// Scenario 4: the latency the webhooks add to TServer creates.

package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const scenarioAdmission = "4 admission"

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
	median := slices.SortedFunc(slices.Values(rounds), func(a, b []result) int {
		return cmp.Compare(overhead(a), overhead(b))
	})[(len(rounds)-1)/2]
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
		{Scenario: scenarioAdmission, Metric: "p99 overhead of the webhooks, " + what,
			Value: p(with, 0.99) - p(without, 0.99), Unit: "ms"},
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
func (b *bench) timeCreates(ctx context.Context, ns string, rate float64, n int,
	validated bool) (with, without []time.Duration, err error) {
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
