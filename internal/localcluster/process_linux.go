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

package localcluster

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr puts a child in its own process group (so a terminal's Ctrl-C reaches only us, and
// we stop children in order) and has the kernel kill it if we die without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killStale kills processes whose command line names one of paths (the kubeconfig, etcd data
// and certificates of a state directory): what an earlier run that was killed outright left
// behind. It returns how many it killed.
func killStale(paths []string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	killed := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || pid == os.Getppid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !slices.ContainsFunc(paths, func(p string) bool { return namesPath(string(cmdline), p) }) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed
}

// namesPath says whether a NUL-separated command line names path itself or something below it, as
// an argument or a flag's value.
func namesPath(cmdline, path string) bool {
	for i := 0; ; {
		j := strings.Index(cmdline[i:], path)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(path)
		// At the start of an argument or of a flag's value (--kubeconfig=...), not inside another
		// path (/home/x/work/main/.local when path is /work/main/.local).
		atStart := start == 0 || cmdline[start-1] == 0 || cmdline[start-1] == '='
		if atStart && (end == len(cmdline) || cmdline[end] == 0 || cmdline[end] == '/') {
			return true
		}
		i = end
	}
}
