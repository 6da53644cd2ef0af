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
	"bufio"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"
)

// pvControllerVerbosity makes kube-controller-manager's PV controller log every step of every
// sync (--trace-pv-controller), which pvControllerTrace reads.
const pvControllerVerbosity = "--vmodule=pv_controller=4,pv_controller_base=4"

// phaseBound is the phase of a bound claim and of a bound volume, as the log writes both.
const phaseBound = "Bound"

// A klog line: its time (month, day, time of day) and its message, then key="value" pairs.
var (
	klogLine = regexp.MustCompile(`^[IWE](\d{4} \d\d:\d\d:\d\d\.\d{6})\s+\d+ [^]]+\] "([^"]*)"(.*)$`)
	klogPair = regexp.MustCompile(`(\w+)="([^"]*)"`)
)

// bindingWrites are the writes with which the PV controller completes a binding: each from the
// message that starts it to the one that says it was saved, or to the one that says it was not
// needed.
var bindingWrites = []struct{ name, key, start, done, skipped string }{
	{"volume phase", "volumeName", "Updating PersistentVolume", "Volume entered phase",
		"Updating PersistentVolume: phase already set"},
	{"claim volumeName", "PVC", "Updating PersistentVolumeClaim: binding to volume",
		"Updating PersistentVolumeClaim: bound to volume", "Updating PersistentVolumeClaim: already bound to volume"},
	{"claim phase", "PVC", "Updating PersistentVolumeClaim status", "Claim entered phase",
		"Updating PersistentVolumeClaim status, phase already set"},
}

// pvControllerTrace says, from kube-controller-manager's log, how the PV controller's one claim
// worker bound the claims of run (namespace run, volumes named run-...): the time from its first
// binding to its last, and each write of a binding: how often it was made, skipped, and how long
// it took. With Kubernetes alone and with the agents alike the worker binds without a pause from
// the first claim to the last, so the sum of its writes is the run's critical path.
func pvControllerTrace(logFile, run string) (string, error) {
	f, err := os.Open(logFile)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()

	var firstBinding, lastBound time.Time
	bound := 0
	pending := map[string]time.Time{} // write name and object: when it started
	latencies := map[string][]time.Duration{}
	skipped := map[string]int{}
	scanner := bufio.NewScanner(f)
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		m := klogLine.FindStringSubmatch(scanner.Text())
		if m == nil {
			continue
		}
		at, err := time.Parse("0102 15:04:05.000000", m[1])
		if err != nil {
			continue
		}
		msg, kv := m[2], map[string]string{}
		for _, p := range klogPair.FindAllStringSubmatch(m[3], -1) {
			kv[p[1]] = p[2]
		}
		if !strings.HasPrefix(kv["PVC"], run+"/") && !strings.HasPrefix(kv["volumeName"], run+"-") {
			continue
		}
		switch {
		case msg == "Binding volume to claim" && firstBinding.IsZero():
			firstBinding = at
		case msg == "Claim entered phase" && kv["phase"] == phaseBound:
			bound++
			lastBound = at
		}
		for _, w := range bindingWrites {
			object := w.name + "/" + kv[w.key]
			start, started := pending[object]
			switch {
			case msg == w.start && (kv["setPhase"] == "" || kv["setPhase"] == phaseBound):
				pending[object] = at
			case msg == w.skipped && started:
				skipped[w.name]++
				delete(pending, object)
			case msg == w.done && (kv["phase"] == "" || kv["phase"] == phaseBound) && started:
				latencies[w.name] = append(latencies[w.name], at.Sub(start))
				delete(pending, object)
			}
		}
	}
	if err := scanner.Err(); err != nil {
		return "", err
	}
	if bound == 0 {
		return "", fmt.Errorf("no binding of %s in %s (was kube-controller-manager started with %s?)",
			run, logFile, pvControllerVerbosity)
	}
	var all time.Duration
	writes := make([]string, 0, len(bindingWrites))
	for _, w := range bindingWrites {
		d := latencies[w.name]
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		all += sum
		p50 := 0.0
		if len(d) > 0 {
			slices.Sort(d)
			p50 = float64(d[len(d)/2].Microseconds()) / 1000
		}
		writes = append(writes, fmt.Sprintf("%s %d made (p50 %.1f ms, %.2f s), %d skipped",
			w.name, len(d), p50, sum.Seconds(), skipped[w.name]))
	}
	return fmt.Sprintf("PV controller: %d claims bound %.2f s after its first binding, %.2f s of it in writes: %s",
		bound, lastBound.Sub(firstBinding).Seconds(), all.Seconds(), strings.Join(writes, "; ")), nil
}
