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

// Scenario 7: what measuring a volume's usage costs the agent.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

const scenarioUsage = "7 volume usage"

// usageFilesPerDir is how many files each directory of the measured tree holds.
const usageFilesPerDir = 1000

// usage makes a volume directory of o.usageFiles empty files below a host root of its own, and
// measures one pass over it as the agent's usage meter does (hostfs.Measure, in steps of 1,000
// entries), without the meter's rate limit: the wall time and the CPU time the pass takes. At
// the agent's default --usage-rate the same pass is spread over files/rate seconds.
func usage(_ context.Context, o options) ([]result, error) {
	root := filepath.Join(o.stateDir, "usage-root")
	if err := os.RemoveAll(root); err != nil {
		return nil, err
	}
	defer func() { _ = os.RemoveAll(root) }()
	const rel = "ns/app.server/data"
	start := time.Now()
	for i := 0; i < o.usageFiles; i += usageFilesPerDir {
		dir := filepath.Join(root, rel, fmt.Sprintf("d%04d", i/usageFilesPerDir))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		for j := i; j < min(i+usageFilesPerDir, o.usageFiles); j++ {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%d", j)))
			if err != nil {
				return nil, err
			}
			_ = f.Close()
		}
	}
	fmt.Printf("  made %d files in %s\n", o.usageFiles, time.Since(start).Round(time.Millisecond))
	r, err := hostfs.Open(root)
	if err != nil {
		return nil, err
	}
	defer func() { _ = r.Close() }()
	// A first pass fills the kernel's caches, as the agent's passes after its first find them.
	for pass := range 2 {
		cpu0 := processCPU()
		wall0 := time.Now()
		m, err := r.Measure(rel)
		if err != nil {
			return nil, err
		}
		for !m.Step(1000) {
		}
		m.Close()
		wall, cpu := time.Since(wall0).Seconds(), processCPU()-cpu0
		got := m.Usage()
		dirs := (o.usageFiles + usageFilesPerDir - 1) / usageFilesPerDir
		fmt.Printf("  pass %d: %d inodes (%d files, %d directories and the volume), %.2f s, %.2f CPU s\n",
			pass+1, got.Inodes, o.usageFiles, dirs, wall, cpu)
		if want := int64(o.usageFiles + dirs + 1); got.Inodes != want || m.Err() != nil {
			return nil, fmt.Errorf("the pass counted %d inodes, want %d (%v)", got.Inodes, want, m.Err())
		}
		if pass == 1 {
			what := fmt.Sprintf("one pass over %d files", o.usageFiles)
			return []result{
				{Scenario: scenarioUsage, Metric: what + ", wall time", Value: wall, Unit: "s"},
				{Scenario: scenarioUsage, Metric: what + ", CPU time", Value: cpu, Unit: "s"},
				{Scenario: scenarioUsage, Metric: "entries per CPU second", Value: float64(got.Inodes) / cpu, Unit: "/s"},
				{Scenario: scenarioUsage, Metric: "the pass at the default --usage-rate 20000",
					Value: float64(got.Inodes) / 20000, Unit: "s"},
			}, nil
		}
	}
	return nil, nil
}

// processCPU is the CPU time this process has used, user and system, in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
