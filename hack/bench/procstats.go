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

// What the bench reads of its processes in /proc: their memory, and their CPU time by component,
// with which it waits for a quiet cluster and says where a run's CPU went.

package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procStats returns a process's peak RSS (VmHWM) in MB and its CPU time in seconds.
func procStats(pid int) (float64, float64) {
	return statusField(pid, "VmHWM:"), cpuSeconds(pid)
}

func currentRSS(pid int) float64 { return statusField(pid, "VmRSS:") }

func statusField(pid int, field string) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if value, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.Fields(value)[0], 64)
			return kb / 1024
		}
	}
	return 0
}

func cpuSeconds(pid int) float64 {
	st, err := readStat(pid)
	if err != nil {
		return 0
	}
	return st.cpuSeconds
}

// stat is what the bench reads from /proc/<pid>/stat.
type stat struct {
	ppid       int
	cpuSeconds float64
}

func readStat(pid int) (stat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return stat{}, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ppid, _ := strconv.Atoi(fields[1])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return stat{ppid: ppid, cpuSeconds: (utime + stime) / clockTicks()}, nil
}

// clockTicks is USER_HZ, the unit of /proc's CPU times.
var clockTicks = sync.OnceValue(func() float64 {
	if out, err := exec.Command("getconf", "CLK_TCK").Output(); err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil {
			return v
		}
	}
	return 100
})

// cpuByComponent sums the CPU seconds of this process's descendants by component: the
// command's base name, and "agents" for the agent binary.
func cpuByComponent() map[string]float64 {
	stats := map[int]stat{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if st, err := readStat(pid); err == nil {
			stats[pid] = st
		}
	}
	self := os.Getpid()
	out := map[string]float64{}
	for pid, st := range stats {
		p := st.ppid
		for p != 0 && p != self {
			p = stats[p].ppid
		}
		if p != self {
			continue
		}
		if name := component(pid); name != "" {
			out[name] += st.cpuSeconds
		}
	}
	return out
}

// component is the component process pid counts for in cpuByComponent, or "" if it is gone.
func component(pid int) string {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	name, _, _ := strings.Cut(string(cmdline), "\x00")
	if name = filepath.Base(name); name == "tserver-agent" {
		return "agents"
	}
	return name
}

// quietCPU is how much CPU (seconds per second, all components together) counts as a quiet
// cluster of ten nodes: kwok's node heartbeats and the controllers' resyncs, nothing else.
const quietCPU = 0.15

// waitQuiet waits until the cluster's components together use less than quiet CPU seconds in a
// second.
func waitQuiet(ctx context.Context, quiet float64) error {
	start := time.Now()
	before := sum(cpuByComponent())
	for time.Since(start) < time.Minute {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		now := sum(cpuByComponent())
		if now-before < quiet {
			fmt.Printf("    quiet after %s\n", time.Since(start).Round(100*time.Millisecond))
			return nil
		}
		before = now
	}
	return errors.New("the cluster did not become quiet within a minute")
}

func sum(m map[string]float64) float64 {
	total := 0.0
	for _, v := range m {
		total += v
	}
	return total
}

// cpuSince is the CPU seconds each component used since before (cpuByComponent).
func cpuSince(before map[string]float64) map[string]float64 { return since(cpuByComponent(), before) }

// since is what each of the counters in now grew by since before.
func since(now, before map[string]float64) map[string]float64 {
	grown := make(map[string]float64, len(now))
	for k, v := range now {
		grown[k] = v - before[k]
	}
	return grown
}

// printCPU prints the CPU seconds each component used, the most first.
func printCPU(used map[string]float64) {
	names := slices.SortedFunc(maps.Keys(used), func(a, b string) int { return cmp.Compare(used[b], used[a]) })
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.1f", name, used[name]))
	}
	fmt.Printf("    CPU seconds: %s\n", strings.Join(parts, ", "))
}
