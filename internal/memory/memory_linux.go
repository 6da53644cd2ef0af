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

package memory

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

func releaseStartupPages() (int64, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	before, err := residentFileBytes()
	if err != nil {
		return 0, err
	}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode pathname, e.g.
		// 00400000-013de000 r-xp 00000000 00:2f 1234 /tserver-agent
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.Join(fields[5:], " ") != exe || strings.Contains(fields[1], "w") {
			continue
		}
		start, end, err := addressRange(fields[0])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Drop what is resident, then no fault-around (and no read-ahead) for this mapping.
		for _, advice := range []int{unix.MADV_DONTNEED, unix.MADV_RANDOM} {
			if _, _, errno := unix.Syscall(unix.SYS_MADVISE, start, end-start, uintptr(advice)); errno != 0 {
				errs = append(errs, fmt.Errorf("madvise %s: %w", fields[0], errno))
			}
		}
	}
	if err := errors.Join(append(errs, sc.Err())...); err != nil {
		return 0, err
	}
	after, err := residentFileBytes()
	return before - after, err
}

func addressRange(s string) (start, end uintptr, err error) {
	lo, hi, _ := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(lo, 16, 64)
	b, err2 := strconv.ParseUint(hi, 16, 64)
	if err := errors.Join(err1, err2); err != nil || b <= a {
		return 0, 0, fmt.Errorf("reading mapping %q: %w", s, err)
	}
	return uintptr(a), uintptr(b), nil
}

// residentFileBytes is the process's resident file-backed memory (RssFile), in bytes.
func residentFileBytes() (int64, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "RssFile:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no RssFile in /proc/self/status")
}
