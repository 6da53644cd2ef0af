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

// The API server's metrics, and the CPU and heap profiles of --profile-dir.

package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

// apiServerName names the API server's profiles.
const apiServerName = "kube-apiserver"

// profile records CPU profiles of the manager, every agent and the API server for
// o.profileFor into o.profileDir; the returned function waits for them.
func (b *bench) profile(ctx context.Context, run string) (waitForProfiles func()) {
	var wg sync.WaitGroup
	if err := os.MkdirAll(b.o.profileDir, 0o755); err != nil {
		fmt.Printf("    profiles: %v\n", err)
		return wg.Wait
	}
	apiServer, err := b.apiServerClient()
	if err != nil {
		fmt.Printf("    profiles: %v\n", err)
		return wg.Wait
	}
	before, beforeSeconds, err := requestStats(ctx, apiServer, b.cluster.Config.Host)
	if err != nil {
		fmt.Printf("    profiles: %v\n", err)
	}
	wg.Go(func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.o.profileFor):
		}
		after, afterSeconds, err := requestStats(ctx, apiServer, b.cluster.Config.Host)
		if err != nil {
			fmt.Printf("    profiles: %v\n", err)
			return
		}
		var lines []string
		for k, n := range after {
			if d := n - before[k]; d > 0 {
				mean := 1000 * (afterSeconds[k] - beforeSeconds[k]) / d
				lines = append(lines, fmt.Sprintf("%8.0f %8.1f ms %s", d, mean, k))
			}
		}
		slices.Sort(lines)
		slices.Reverse(lines)
		file := filepath.Join(b.o.profileDir, run+"-kube-apiserver-requests.txt")
		if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			fmt.Printf("    profiles: %v\n", err)
		}
	})
	query := fmt.Sprintf("/debug/pprof/profile?seconds=%d", int(b.o.profileFor.Seconds()))
	targets := map[string]string{apiServerName: strings.TrimSuffix(b.cluster.Config.Host, "/") + query}
	for _, p := range append([]*localcluster.Process{b.manager}, b.agents...) {
		if p != nil && running(p) { // no manager in Kubernetes alone's runs
			targets[p.Name] = "http://" + p.PprofAddr + query
		}
	}
	for name, url := range targets {
		c := http.DefaultClient
		if name == apiServerName {
			c = apiServer
		}
		wg.Go(func() {
			file := filepath.Join(b.o.profileDir, run+"-"+name+".pprof")
			err := download(ctx, c, url, file)
			// One killed meanwhile (the restart's manager and agents) is profiled from when it is
			// back: its start.
			for deadline := time.Now().Add(b.o.profileFor); err != nil && name != apiServerName &&
				time.Now().Before(deadline) && ctx.Err() == nil; {
				time.Sleep(50 * time.Millisecond)
				err = download(ctx, c, url, file)
			}
			if err != nil {
				fmt.Printf("    profile of %s: %v\n", name, err)
			}
			if name == apiServerName {
				return
			}
			// Where memory went, once the run is over.
			heap := filepath.Join(b.o.profileDir, run+"-"+name+"-heap.pprof")
			heapURL := strings.Replace(url, query, "/debug/pprof/heap", 1)
			if err := download(ctx, c, heapURL, heap); err != nil {
				fmt.Printf("    heap profile of %s: %v\n", name, err)
			}
		})
	}
	return wg.Wait
}

// running says whether p has not exited.
func running(p *localcluster.Process) bool {
	select {
	case <-p.Exited():
		return false
	default:
		return true
	}
}

// requestStats reads the API server's request counters and the time it spent on those requests
// (apiserver_request_duration_seconds_sum: from receiving a request to responding, watches
// excepted), keyed by verb, group, resource and subresource.
func requestStats(ctx context.Context, c *http.Client, host string) (counts, seconds map[string]float64, err error) {
	page, err := metricsPage(ctx, c, host)
	if err != nil {
		return nil, nil, err
	}
	by := []string{"verb", "resource", "subresource", "group"}
	return sumMetric(page, "apiserver_request_total", by...),
		sumMetric(page, "apiserver_request_duration_seconds_sum", by...), nil
}

// apiServerMetric sums the API server's samples of metric by the given labels.
func apiServerMetric(ctx context.Context, c *http.Client, host, metric string,
	by ...string) (map[string]float64, error) {
	page, err := metricsPage(ctx, c, host)
	if err != nil {
		return nil, err
	}
	return sumMetric(page, metric, by...), nil
}

// metricsPage reads the metrics that the server at host serves, within ten seconds.
func metricsPage(ctx context.Context, c *http.Client, host string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(host, "/")+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s/metrics: %s", host, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	return string(data), err
}

// gauge is the value of metric in page, a sample without labels.
func gauge(page, metric string) (float64, bool) {
	for line := range strings.SplitSeq(page, "\n") {
		if v, ok := strings.CutPrefix(line, metric+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f, err == nil
		}
	}
	return 0, false
}

// sumMetric sums the samples of metric in page by the given labels.
func sumMetric(page, metric string, by ...string) map[string]float64 {
	sums := map[string]float64{}
	for line := range strings.SplitSeq(page, "\n") {
		sample, ok := strings.CutPrefix(line, metric+"{")
		if !ok {
			continue
		}
		end := strings.LastIndexByte(sample, '}')
		v, err := strconv.ParseFloat(strings.TrimSpace(sample[end+1:]), 64)
		if err != nil {
			continue
		}
		var keep []string
		for l := range strings.SplitSeq(sample[:end], ",") {
			if name, _, _ := strings.Cut(l, "="); slices.Contains(by, name) {
				keep = append(keep, l)
			}
		}
		sums[strings.Join(keep, " ")] += v
	}
	return sums
}

func download(ctx context.Context, c *http.Client, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}

// clientUse is what one component's clients of the API server did: the requests they made
// (rest_client_requests_total) and the seconds those waited in the clients' rate limiters before
// being sent (rest_client_rate_limiter_duration_seconds_sum: summed over requests, so that
// requests waiting at once add up to more than the time that passed).
type clientUse struct {
	requests, throttled float64
	// byMethod are the requests by HTTP method.
	byMethod map[string]float64
	// started is when the component started (process_start_time_seconds): one started again
	// meanwhile counts from 0, and its counters say nothing of the run.
	started float64
}

// clientRateLimits are the rate limits (requests per second) of one client of each component
// clientUses reads: kube-controller-manager's as the local cluster sets it, each of its
// controllers having a client of its own; kube-scheduler's --scheduler-qps or its default (its
// clientConnection.qps), for its client and, apart, for the client of its events. A component's
// requests are those of all its clients.
func (o options) clientRateLimits() map[string]float64 {
	return map[string]float64{
		"kube-controller-manager": localcluster.ControllerManagerQPS,
		"kube-scheduler":          float64(cmp.Or(o.schedulerQPS, 50)),
	}
}

// clientUses reads the clientUse of kube-controller-manager and kube-scheduler from their
// metrics, by component. One that cannot be read is said and left out: it is a figure to
// explain the others, not one of them.
func (b *bench) clientUses(ctx context.Context) map[string]clientUse {
	if b.components == nil {
		cfg := rest.CopyConfig(b.cluster.Config)
		// Each serves a certificate of its own, signed by nothing the bench knows.
		cfg.Insecure, cfg.CAData, cfg.CAFile = true, nil, ""
		c, err := rest.HTTPClientFor(cfg)
		if err != nil {
			fmt.Printf("    components' metrics: %v\n", err)
			return nil
		}
		b.components = c
	}
	uses := map[string]clientUse{}
	for name, port := range b.cluster.SecurePorts {
		page, err := metricsPage(ctx, b.components, "https://127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			fmt.Printf("    metrics of %s: %v\n", name, err)
			continue
		}
		requests := sumMetric(page, "rest_client_requests_total", "method")
		throttled := sumMetric(page, "rest_client_rate_limiter_duration_seconds_sum")
		byMethod := map[string]float64{}
		for k, v := range requests {
			byMethod[strings.Trim(strings.TrimPrefix(k, "method="), `"`)] += v
		}
		started, _ := gauge(page, "process_start_time_seconds")
		uses[name] = clientUse{requests: sum(requests), throttled: sum(throttled), byMethod: byMethod,
			started: started}
	}
	return uses
}

// printClients prints what kube-controller-manager's and kube-scheduler's clients did in run:
// how many requests a second against their rate limit, and how long those waited for it.
func printClients(o options, run runFigures) {
	limits := o.clientRateLimits()
	parts := make([]string, 0, len(run.clients))
	for _, name := range slices.Sorted(maps.Keys(run.clients)) {
		u := run.clients[name]
		var methods []string
		for _, m := range slices.Sorted(maps.Keys(u.byMethod)) {
			if u.byMethod[m] > 0 {
				methods = append(methods, fmt.Sprintf("%s %.0f", m, u.byMethod[m]))
			}
		}
		parts = append(parts, fmt.Sprintf("%s %.0f requests (%s), %.1f/s (limit %.0f/s a client), %.1f s waited",
			name, u.requests, strings.Join(methods, ", "), u.requests/run.took.Seconds(), limits[name],
			u.throttled))
	}
	if len(parts) > 0 {
		fmt.Printf("    clients' rate limits: %s\n", strings.Join(parts, "; "))
	}
}
