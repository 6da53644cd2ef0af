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

package hostfs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const volumeRel = "ns/app.server/data"

// volumeTree makes a volume directory below r holding files of known sizes, a sparse file, a
// hard link, nested directories, and symbolic links to a file and a directory outside the root
// and to a directory inside the volume; the outside holds much more than the volume. It returns
// the volume's path.
func volumeTree(t *testing.T, r *Root, base string) string {
	t.Helper()
	vol := filepath.Join(r.Dir(), volumeRel)
	write := func(rel string, size int) {
		p := filepath.Join(vol, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte("x"), size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a", 10_000)
	write("b/c", 100_000)
	write("b/d/e/f", 1)
	for i := range 40 {
		write(fmt.Sprintf("many/%d", i), 5_000)
	}
	sparse, err := os.Create(filepath.Join(vol, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sparse.Truncate(1 << 30); err != nil { // 1 GiB that takes no blocks
		t.Fatal(err)
	}
	_ = sparse.Close()
	if err := os.Link(filepath.Join(vol, "b/c"), filepath.Join(vol, "b/c-again")); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(base, "outside")
	for i := range 20 {
		big := filepath.Join(outside, fmt.Sprintf("big%d", i))
		if err := os.WriteFile(big, bytes.Repeat([]byte("y"), 100_000), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"to-outside-dir":  outside,
		"to-outside-file": filepath.Join(outside, "big0"),
		"b/to-inside":     filepath.Join(vol, "many"),
	} {
		if err := os.Symlink(target, filepath.Join(vol, link)); err != nil {
			t.Fatal(err)
		}
	}
	return vol
}

// du is what du -x says the directory holds: bytes on disk and inodes.
func du(t *testing.T, dir string) Usage {
	t.Helper()
	read := func(args ...string) int64 {
		out, err := exec.Command("du", append(args, dir)...).Output()
		if err != nil {
			t.Skipf("skipped: du: %v", err)
		}
		n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	return Usage{Bytes: read("-sxB1"), Inodes: read("-sx", "--inodes")}
}

func measure(t *testing.T, r *Root, budget int) (Usage, int, error) {
	t.Helper()
	m, err := r.Measure(volumeRel)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	steps := 1
	for !m.Step(budget) {
		steps++
	}
	return m.Usage(), steps, m.Err()
}

func TestMeasureCountsAsDuDoes(t *testing.T) {
	r, base := newRoot(t)
	vol := volumeTree(t, r, base)
	got, _, err := measure(t, r, 1_000)
	if err != nil {
		t.Fatal(err)
	}
	if want := du(t, vol); got != want {
		t.Errorf("measured %+v, du says %+v", got, want)
	}
	// The hard link once, the sparse file by its blocks, the links as links: far less than the
	// outside or the sparse file's length.
	if got.Bytes > 1<<20 {
		t.Errorf("measured %d bytes: a link was followed, or the sparse file counted by its length", got.Bytes)
	}
}

func TestMeasureInStepsOfAnyBudget(t *testing.T) {
	r, base := newRoot(t)
	volumeTree(t, r, base)
	whole, steps, err := measure(t, r, 1<<20)
	if err != nil || steps != 1 {
		t.Fatalf("one step of a large budget: %d steps, %v", steps, err)
	}
	for _, budget := range []int{1, 3, 7, 50} {
		got, steps, err := measure(t, r, budget)
		if err != nil {
			t.Fatal(err)
		}
		if got != whole {
			t.Errorf("budget %d: %+v, want %+v", budget, got, whole)
		}
		// 50 entries or so in all: a step of budget reads at most budget of them.
		if budget <= 3 && steps < 50/budget {
			t.Errorf("budget %d: over in %d steps: a step read more than its budget", budget, steps)
		}
	}
}

func TestMeasureStaysInTheVolume(t *testing.T) {
	r, base := newRoot(t)
	// The volume's parent directory, a sibling volume of another server and the outside are big.
	for _, p := range []string{
		filepath.Join(r.Dir(), "ns/app.server/other/big"),
		filepath.Join(r.Dir(), "ns/app.other/data/big"),
		filepath.Join(base, "outside/big"),
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte("z"), 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	vol := filepath.Join(r.Dir(), volumeRel)
	if err := os.MkdirAll(vol, 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"up": "..", "sibling": "../../app.other/data", "abs": base, "root": "/"} {
		if err := os.Symlink(target, filepath.Join(vol, link)); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := measure(t, r, 100)
	if err != nil {
		t.Fatal(err)
	}
	if want := (du(t, vol)); got != want || got.Inodes != 5 || got.Bytes > 64<<10 {
		t.Errorf("measured %+v (du: %+v): want the directory and its 4 links only", got, want)
	}
}

func TestMeasureRefusesAPathThroughALink(t *testing.T) {
	r, base := newRoot(t)
	if err := os.MkdirAll(filepath.Join(r.Dir(), "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(base, "outside"), filepath.Join(r.Dir(), "ns/app.server")); err != nil {
		t.Fatal(err)
	}
	if m, err := r.Measure(volumeRel); !errors.Is(err, ErrSymlink) {
		if m != nil {
			m.Close()
		}
		t.Fatalf("Measure through a link: %v, want ErrSymlink", err)
	}
	if _, err := r.Measure("ns/missing/data"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Measure of a missing directory: %v, want ErrNotExist", err)
	}
}

func TestMeasureDescendsAsDeepAsTheTreeNotAsWide(t *testing.T) {
	r, _ := newRoot(t)
	vol := filepath.Join(r.Dir(), volumeRel)
	for i := range maxMeasureDepth + 50 { // more directories side by side than levels it may descend
		if err := os.MkdirAll(filepath.Join(vol, fmt.Sprintf("d%d", i), "inside"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := measure(t, r, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(1 + 2*(maxMeasureDepth+50)); got.Inodes != want {
		t.Errorf("counted %d inodes, want %d", got.Inodes, want)
	}
}

func TestMeasureReportsWhatItLeavesOut(t *testing.T) {
	r, _ := newRoot(t)
	deep := filepath.Join(r.Dir(), volumeRel)
	for range maxMeasureDepth + 5 {
		deep = filepath.Join(deep, "d")
	}
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	got, _, err := measure(t, r, 1000)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d levels deep", maxMeasureDepth)) {
		t.Errorf("err = %v, want one saying how deep it measured", err)
	}
	if got.Inodes != maxMeasureDepth+1 {
		t.Errorf("counted %d inodes, want the volume and %d levels below it", got.Inodes, maxMeasureDepth)
	}
}

func TestFilesystemIsWhatDfSays(t *testing.T) {
	r, _ := newRoot(t)
	got, err := r.Filesystem()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("df", "-B1", "--output=size,itotal,ifree", r.Dir()).Output()
	if err != nil {
		t.Skipf("skipped: df: %v", err)
	}
	fields := strings.Fields(strings.Split(strings.TrimSpace(string(out)), "\n")[1])
	var want [3]uint64
	for i := range want {
		if want[i], err = strconv.ParseUint(fields[i], 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	if got.Bytes != want[0] || got.Inodes != want[1] {
		t.Errorf("size %d, %d inodes; df says %d, %d", got.Bytes, got.Inodes, want[0], want[1])
	}
	if got.BytesAvailable == 0 || got.BytesAvailable > got.Bytes || got.InodesFree > got.Inodes {
		t.Errorf("available %d of %d bytes, %d of %d inodes free", got.BytesAvailable, got.Bytes, got.InodesFree, got.Inodes)
	}
}

func TestMeasureSaysTheFirstFewThingsItCouldNotRead(t *testing.T) {
	r, _ := newRoot(t)
	for i := range maxMeasureErrors + 3 {
		deep := filepath.Join(r.Dir(), volumeRel, fmt.Sprintf("chain%d", i))
		for range maxMeasureDepth {
			deep = filepath.Join(deep, "d")
		}
		if err := os.MkdirAll(deep, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := measure(t, r, 1000)
	if err == nil || strings.Count(err.Error(), "levels deep") != maxMeasureErrors ||
		!strings.HasSuffix(err.Error(), "and 3 more") {
		t.Errorf("err = %v, want the first %d and a count of the rest", err, maxMeasureErrors)
	}
}
