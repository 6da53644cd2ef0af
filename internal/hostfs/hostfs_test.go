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
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// newRoot returns a Root on a fresh directory "root" beside a directory "outside" holding a
// file that no operation may touch.
func newRoot(t *testing.T) (*Root, string) {
	t.Helper()
	base := t.TempDir()
	for _, d := range []string{"root", "outside"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(base, "outside", "keep"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Open(filepath.Join(base, "root"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, base
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("changing a directory's owner needs root, and this test runs as uid", os.Geteuid(), "under CI")
		}
		t.Skip("skipped: changing a directory's owner needs root, and this test runs as uid", os.Geteuid())
	}
}

func statOf(t *testing.T, path string) Ownership {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return ownershipOf(fi)
}

func assertOutsideIntact(t *testing.T, base string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(base, "outside", "keep"))
	if err != nil || string(data) != "data" {
		t.Fatalf("the file outside the root was touched: %q %v", data, err)
	}
	if o := statOf(t, filepath.Join(base, "outside")); o.Mode != 0o755 {
		t.Fatalf("the directory outside the root changed mode: %v", o)
	}
}

func TestParseOwnership(t *testing.T) {
	for _, tt := range []struct {
		uid, gid, mode string
		want           Ownership
		wantErr        bool
	}{
		{"1000", "0", "755", Ownership{1000, 0, 0o755}, false},
		{"0", "0", "0711", Ownership{0, 0, 0o711}, false},
		{"-1", "0", "755", Ownership{}, true},
		{"0", "x", "755", Ownership{}, true},
		{"0", "0", "8", Ownership{}, true},
		{"0", "0", "1777", Ownership{}, true},
	} {
		got, err := ParseOwnership(tt.uid, tt.gid, tt.mode)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseOwnership(%q, %q, %q) = %v, %v", tt.uid, tt.gid, tt.mode, got, err)
		}
	}
}

func TestEnsureCreatesWithOwnership(t *testing.T) {
	requireRoot(t)
	r, _ := newRoot(t)
	want := Ownership{UID: 1000, GID: 0, Mode: 0o755}
	res, err := r.Ensure("default/tars.tarslog/remote-log-dir", want)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || res.Repaired {
		t.Errorf("result %+v, want created", res)
	}
	if got := statOf(t, filepath.Join(r.Dir(), "default/tars.tarslog/remote-log-dir")); got != want {
		t.Errorf("directory has %v, want %v", got, want)
	}
	if got := statOf(t, filepath.Join(r.Dir(), "default")); got.Mode != 0o755 || got.UID != 0 {
		t.Errorf("parent has %v, want 0:0 0755", got)
	}
}

func TestEnsureModeWithoutRoot(t *testing.T) {
	r, _ := newRoot(t)
	me := Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o711}
	if _, err := r.Ensure("a/b", me); err != nil {
		t.Fatal(err)
	}
	if got := statOf(t, filepath.Join(r.Dir(), "a/b")); got != me {
		t.Errorf("directory has %v, want %v", got, me)
	}
}

func TestEnsureAdoptsAndRepairs(t *testing.T) {
	requireRoot(t)
	r, _ := newRoot(t)
	dir := filepath.Join(r.Dir(), "ns", "app.server", "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777|fs.ModeSticky); err != nil {
		t.Fatal(err)
	}
	want := Ownership{UID: 2000, GID: 100, Mode: 0o751}
	res, err := r.Ensure("ns/app.server/data", want)
	if err != nil {
		t.Fatal(err)
	}
	if res.Created || !res.Repaired || res.Was != (Ownership{0, 0, 0o777 | fs.ModeSticky}) {
		t.Errorf("result %+v, want an adopted, repaired directory that was 0:0 1777", res)
	}
	if got := statOf(t, dir); got != want {
		t.Errorf("directory has %v, want %v", got, want)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "precious")); err != nil || string(data) != "keep me" {
		t.Errorf("adopting wiped the contents: %q %v", data, err)
	}
	again, err := r.Ensure("ns/app.server/data", want)
	if err != nil || again.Created || again.Repaired {
		t.Errorf("second Ensure = %+v, %v; want nothing to do", again, err)
	}
}

func TestRepairNeverCreates(t *testing.T) {
	r, _ := newRoot(t)
	me := Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o755}
	_, err := r.Repair("ns/a.b/data", me)
	if !errors.Is(err, ErrMissing) {
		t.Fatalf("Repair of a missing directory = %v, want ErrMissing", err)
	}
	if _, err := os.Lstat(filepath.Join(r.Dir(), "ns")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Repair made something: %v", err)
	}
	if _, err := r.Ensure("ns/a.b/data", me); err != nil {
		t.Fatal(err)
	}
	res, err := r.Repair("ns/a.b/data", Ownership{UID: me.UID, GID: me.GID, Mode: 0o711})
	if err != nil || res.Created || !res.Repaired || res.HeldData {
		t.Fatalf("Repair of an empty directory = %+v, %v", res, err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir(), "ns/a.b/data/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := r.Ensure("ns/a.b/data", me); err != nil || !res.HeldData || res.Created {
		t.Fatalf("Ensure of a directory holding data = %+v, %v; want HeldData", res, err)
	}
}

func TestSymlinkOnTheWayRefused(t *testing.T) {
	r, _ := newRoot(t)
	for _, d := range []string{"ns/other.srv/vol", "ns/app.srv"} {
		if err := os.MkdirAll(filepath.Join(r.Dir(), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir(), "ns/other.srv/vol/data"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An administrator replaces a server's directory with a link to another server's.
	if err := os.Remove(filepath.Join(r.Dir(), "ns/app.srv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("other.srv", filepath.Join(r.Dir(), "ns/app.srv")); err != nil {
		t.Fatal(err)
	}
	me := Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o700}
	if err := r.RemoveAll("ns/app.srv/vol"); !errors.Is(err, ErrSymlink) {
		t.Errorf("RemoveAll through a link = %v, want ErrSymlink", err)
	}
	if _, err := r.Ensure("ns/app.srv/vol", me); !errors.Is(err, ErrSymlink) {
		t.Errorf("Ensure through a link = %v, want ErrSymlink", err)
	}
	if _, err := r.HoldsData("ns/app.srv/vol"); !errors.Is(err, ErrSymlink) {
		t.Errorf("HoldsData through a link = %v, want ErrSymlink", err)
	}
	if data, err := os.ReadFile(filepath.Join(r.Dir(), "ns/other.srv/vol/data")); err != nil || string(data) != "data" {
		t.Fatalf("the other server's volume was touched: %q %v", data, err)
	}
	if o := statOf(t, filepath.Join(r.Dir(), "ns/other.srv/vol")); o.Mode != 0o755 {
		t.Fatalf("the other server's volume changed mode: %v", o)
	}
}

func TestDiskMountedLaterIsSeen(t *testing.T) {
	requireRoot(t)
	r, _ := newRoot(t)
	if err := syscall.Mount("tmpfs", r.Dir(), "tmpfs", 0, "size=1m"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mounting a tmpfs: %v", err)
		}
		t.Skip("skipped: cannot mount a tmpfs here:", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(r.Dir(), syscall.MNT_DETACH) })
	// The disk holds a volume with data; the agent opened the root before it was mounted.
	if err := os.MkdirAll(filepath.Join(r.Dir(), "ns/a.b/data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Dir(), "ns/a.b/data/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	held, err := r.HoldsData("ns/a.b/data")
	if err != nil || !held {
		t.Fatalf("HoldsData of a volume on a disk mounted after Open = %v, %v; want true", held, err)
	}
	if _, err := r.Repair("ns/a.b/data", Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o711}); err != nil {
		t.Fatalf("Repair of a volume on a disk mounted after Open: %v", err)
	}
	if o := statOf(t, filepath.Join(r.Dir(), "ns/a.b/data")); o.Mode != 0o711 {
		t.Errorf("the mounted volume's mode is %v: the repair went elsewhere", o)
	}
}

func TestRename(t *testing.T) {
	r, _ := newRoot(t)
	me := Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o755}
	for _, rel := range []string{"ns/a.b/v", "ns/a.b/w"} {
		if _, err := r.Ensure(rel, me); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Rename("ns/a.b/v", "ns/a.b/w"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("Rename onto an existing directory = %v, want ErrExist", err)
	}
	if err := r.Rename("ns/a.b/v", "../v"); err == nil {
		t.Error("Rename out of the root succeeded")
	}
	if err := r.Rename("ns/a.b/v", "ns/a.b/v.trash"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "ns/a.b/v.trash")); err != nil {
		t.Error(err)
	}
}

func TestEnsureNotADirectory(t *testing.T) {
	r, _ := newRoot(t)
	if err := os.WriteFile(filepath.Join(r.Dir(), "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := r.Ensure("file", Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o755})
	if !errors.Is(err, ErrNotDirectory) {
		t.Errorf("err = %v, want ErrNotDirectory", err)
	}
}

func TestEscapesRefused(t *testing.T) {
	r, base := newRoot(t)
	// A link inside the root to a directory outside it, and one to the outside file.
	if err := os.Symlink(filepath.Join(base, "outside"), filepath.Join(r.Dir(), "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../outside/keep", filepath.Join(r.Dir(), "filelink")); err != nil {
		t.Fatal(err)
	}
	me := Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o700}
	for _, rel := range []string{"../outside", "a/../../outside", "/etc", "", ".", "a//b", "link/new", "link"} {
		if _, err := r.Ensure(rel, me); err == nil {
			t.Errorf("Ensure(%q) succeeded", rel)
		}
	}
	for _, rel := range []string{"../outside", "link/keep", "/tmp"} {
		_ = r.RemoveAll(rel)
		if removed, err := r.RemoveIfEmpty(rel); removed || err == nil {
			t.Errorf("RemoveIfEmpty(%q) = %v, %v", rel, removed, err)
		}
	}
	if _, err := r.Ownership("link"); !errors.Is(err, ErrNotDirectory) {
		t.Errorf("Ownership(link) = %v, want ErrNotDirectory", err)
	}
	// Removing a link removes the link, not what it points to.
	if err := r.RemoveAll("link"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveAll("filelink"); err != nil {
		t.Fatal(err)
	}
	assertOutsideIntact(t, base)
	if _, err := os.Lstat(filepath.Join(r.Dir(), "link")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link still there: %v", err)
	}
}

func TestRemove(t *testing.T) {
	r, _ := newRoot(t)
	me := Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o755}
	for _, rel := range []string{"ns/a.b/full", "ns/a.b/empty"} {
		if _, err := r.Ensure(rel, me); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(r.Dir(), "ns/a.b/full/f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if removed, err := r.RemoveIfEmpty("ns/a.b/full"); removed || err != nil {
		t.Errorf("RemoveIfEmpty(full) = %v, %v; want kept", removed, err)
	}
	if removed, err := r.RemoveIfEmpty("ns/a.b/empty"); !removed || err != nil {
		t.Errorf("RemoveIfEmpty(empty) = %v, %v; want removed", removed, err)
	}
	if removed, err := r.RemoveIfEmpty("ns/a.b/missing"); removed || err != nil {
		t.Errorf("RemoveIfEmpty(missing) = %v, %v", removed, err)
	}
	if err := r.RemoveAll("ns/a.b/full"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.Dir(), "ns/a.b/full")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("full still there: %v", err)
	}
	if err := r.RemoveAll("ns/a.b/full"); err != nil {
		t.Errorf("RemoveAll of a missing directory: %v", err)
	}
}

func TestNeedsRootReported(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("skipped: runs only as a non-root user, to see the error a non-root agent reports")
	}
	r, _ := newRoot(t)
	_, err := r.Ensure("x", Ownership{UID: 0, GID: 0, Mode: 0o755})
	if !errors.Is(err, ErrNeedsRoot) && !errors.Is(err, syscall.EPERM) {
		t.Errorf("err = %v, want ErrNeedsRoot", err)
	}
}

// FuzzPaths checks that no path, whatever it holds, makes Ensure, Repair, RemoveIfEmpty or
// RemoveAll touch anything outside the root, nor panic, and that the volumes beside it inside
// the root survive: only the path itself, or what is below it, may go. VolumeDirs, in the tree
// Ensure leaves, lists the volume directories, the one Ensure made at that depth among them,
// and nothing through a symbolic link.
func FuzzPaths(f *testing.F) {
	for _, seed := range []string{"ns/app.server/vol", "../outside", "a/../../outside/keep", "/", "link/x", "..", "a\x00b",
		"ns//x", "./x", "ns/app.server", "ns/app.server/vol/..", "ns/app.server/volx", "ns/app.server/vol/sub"} {
		f.Add(seed)
	}
	neighbours := []string{"ns/app.server/vol", "ns/app.server/other", "ns2/x.y/vol"}
	f.Fuzz(func(t *testing.T, rel string) {
		r, base := newRoot(t)
		if err := os.Symlink(filepath.Join(base, "outside"), filepath.Join(r.Dir(), "link")); err != nil {
			t.Fatal(err)
		}
		for _, n := range neighbours {
			if err := os.MkdirAll(filepath.Join(r.Dir(), n), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(r.Dir(), n, "data"), []byte("data"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		me := Ownership{UID: os.Geteuid(), GID: os.Getegid(), Mode: 0o700}
		_, ensureErr := r.Ensure(rel, me)
		checkVolumeDirs(t, r, neighbours)
		if ensureErr == nil && strings.Count(rel, "/") == volumeDepth-1 {
			checkVolumeDirs(t, r, []string{rel})
		}
		_, _ = r.Repair(rel, me)
		_, _ = r.RemoveIfEmpty(rel)
		_ = r.RemoveAll(rel)
		assertOutsideIntact(t, base)
		for _, n := range neighbours {
			if n == rel || strings.HasPrefix(n, rel+"/") {
				continue // the path itself, or below it: RemoveAll's to remove
			}
			if data, err := os.ReadFile(filepath.Join(r.Dir(), n, "data")); err != nil || string(data) != "data" {
				t.Fatalf("operations on %q lost the data of %s: %q %v", rel, n, data, err)
			}
		}
	})
}

// checkVolumeDirs checks that VolumeDirs lists every directory of want, and only entries three
// levels below the root that are directories, or left aside, reached through no symbolic link.
func checkVolumeDirs(t *testing.T, r *Root, want []string) {
	t.Helper()
	got, err := r.VolumeDirs(1000)
	if err != nil {
		t.Fatalf("VolumeDirs: %v", err)
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("VolumeDirs() = %q, missing %q", got, w)
		}
	}
	for _, rel := range got {
		if !filepath.IsLocal(rel) || filepath.Clean(rel) != rel || strings.Count(rel, "/") != volumeDepth-1 {
			t.Errorf("VolumeDirs listed %q, not a path three levels below the root", rel)
			continue
		}
		for dir := filepath.Dir(rel); dir != "."; dir = filepath.Dir(dir) {
			if fi, err := os.Lstat(filepath.Join(r.Dir(), dir)); err != nil || !fi.IsDir() {
				t.Errorf("VolumeDirs listed %q, through %s, which is no directory: %v", rel, dir, err)
			}
		}
		if fi, err := os.Lstat(filepath.Join(r.Dir(), rel)); err != nil || !fi.IsDir() && !IsAside(rel) {
			t.Errorf("VolumeDirs listed %q, which is neither a directory nor left aside: %v", rel, err)
		}
	}
}

func TestVolumeDirs(t *testing.T) {
	r, base := newRoot(t)
	for _, d := range []string{"ns/a.b/v1/deeper/still", "ns/a.b/v2", "ns/a.b/v1.deleting-123", "ns/c.d", "other/e.f",
		"elsewhere/g.h/w", filepath.Join("..", "outside", "x.y", "hidden")} {
		if err := os.MkdirAll(filepath.Join(r.Dir(), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"top", "ns/file", "ns/a.b/file", "ns/a.b/f.deleting-9"} {
		if err := os.WriteFile(filepath.Join(r.Dir(), f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"linked":              "elsewhere",                    // a namespace's place, linked inside the root
		"out":                 filepath.Join(base, "outside"), // and outside it
		"ns/x.y":              "a.b",                          // a server's place
		"ns/a.b/lnk":          "v2",                           // a volume's place
		"ns/a.b/l.deleting-1": filepath.Join(base, "outside"), // left aside: listed, not followed
	} {
		if err := os.Symlink(target, filepath.Join(r.Dir(), link)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"elsewhere/g.h/w", "ns/a.b/f.deleting-9", "ns/a.b/l.deleting-1", "ns/a.b/v1",
		"ns/a.b/v1.deleting-123", "ns/a.b/v2"}
	got, err := r.VolumeDirs(100)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("VolumeDirs() = %q, %v; want %q", got, err, want)
	}
	assertOutsideIntact(t, base)

	// The root has 6 entries, ns 4, ns/a.b 7, and the rest 3: a limit of 12 never reaches all of ns/a.b.
	got, err = r.VolumeDirs(12)
	if !errors.Is(err, ErrTooManyEntries) {
		t.Errorf("VolumeDirs(12) error = %v, want ErrTooManyEntries", err)
	}
	for _, rel := range got {
		if !slices.Contains(want, rel) {
			t.Errorf("VolumeDirs(12) listed %q", rel)
		}
	}
	if len(got) >= len(want) {
		t.Errorf("VolumeDirs(12) = %q: all of it, past its limit", got)
	}
}

func TestVolumeDirsUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("skipped: runs only as a non-root user, who may be refused a directory")
	}
	r, _ := newRoot(t)
	for _, d := range []string{"ns/locked.srv/v", "ns/open.srv/v"} {
		if err := os.MkdirAll(filepath.Join(r.Dir(), d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	locked := filepath.Join(r.Dir(), "ns/locked.srv")
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(locked, 0o755) })
	got, err := r.VolumeDirs(100)
	if !slices.Equal(got, []string{"ns/open.srv/v"}) {
		t.Errorf("VolumeDirs() = %q, want what it could read", got)
	}
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "ns/locked.srv") ||
		!strings.Contains(err.Error(), "not root") {
		t.Errorf("VolumeDirs() error = %v, want the directory it may not read, and why", err)
	}
}

// TestMissingSaysWhatOwnershipSays: Missing names exactly the paths whose Ownership is
// fs.ErrNotExist, whatever is on the way (a missing directory, a file, a symbolic link inside or
// out of the root, a path that is not clean), and never the ones that are there.
func TestMissingSaysWhatOwnershipSays(t *testing.T) {
	r, base := newRoot(t)
	root := filepath.Join(base, "root")
	for _, d := range []string{"ns/a.s/v", "ns/a.s/w", "ns/b.s/v", "other/c.s/v", "ns/file.s", "ns.x/a.s/v", "nsz/a.s"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{"ns/plain": "x", "ns/a.s/file": "x"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"ns/inside.s": "a.s", "ns/out.s": filepath.Join(base, "outside"), "ns/a.s/link": "v", "dangling": "nowhere",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	rels := []string{
		"ns/a.s/v", "ns/a.s/w", "ns/b.s/v", "other/c.s/v", // there
		"ns/a.s/gone", "ns/gone.s/v", "gone/a.s/v", "other/c.s/gone", // missing, at each level
		"ns/plain/v", "ns/a.s/file", "ns/a.s/file/v", // a file on the way, or at the path
		"ns/inside.s/v", "ns/out.s/keep", "ns/a.s/link", "dangling/v", "dangling", // links
		"", ".", "/ns/a.s/v", "ns/../ns/a.s/v", "ns//a.s/v", // not clean
		"ns/a.s/gone",                                          // twice
		"ns.x/a.s/v", "nsz/a.s/gone", "nsz/a.s", "ns/b.s/gone", // neighbours whose names begin alike
	}
	var want []string
	for _, rel := range rels {
		if _, err := r.Ownership(rel); errors.Is(err, fs.ErrNotExist) {
			want = append(want, rel)
		}
	}
	got, err := r.Missing(rels)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Missing: %q\nOwnership says missing: %q", got, want)
	}
	if !slices.Contains(got, "gone/a.s/v") || slices.Contains(got, "ns/a.s/v") {
		t.Errorf("Missing: %q: want gone/a.s/v and not ns/a.s/v", got)
	}
	assertOutsideIntact(t, base)

	// The root itself gone (a disk that held it unmounted with its mount point): every clean path.
	if err := os.Rename(root, filepath.Join(base, "moved")); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Missing([]string{"ns/a.s/v", "", "other/c.s/v"}); err != nil ||
		!slices.Equal(got, []string{"ns/a.s/v", "other/c.s/v"}) {
		t.Errorf("Missing without the root: %q, %v; want both clean paths", got, err)
	}
}
