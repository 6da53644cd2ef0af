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

// Package hostfs is all the node agent does to the host's filesystem: create, adopt, repair,
// remove and list volume directories under one root directory. Every path is confined to that
// root by os.Root, which refuses ".." and symbolic links that lead out of it, so no claim, volume
// or link planted on the host can make the agent touch anything else.
package hostfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// permBits are the mode bits the agent manages: permissions, set-id and sticky.
const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

// ErrNotDirectory is returned when a volume's path exists but is not a directory.
var ErrNotDirectory = errors.New("exists and is not a directory")

// ErrNeedsRoot is returned when a directory's owner must change and the process may not do it.
var ErrNeedsRoot = errors.New("changing a directory's owner needs root")

// Ownership is the owner, group and permission bits a volume directory must have.
type Ownership struct {
	UID  int
	GID  int
	Mode fs.FileMode
}

func (o Ownership) String() string {
	return fmt.Sprintf("%d:%d %04o", o.UID, o.GID, uint32(o.Mode))
}

// ParseOwnership reads decimal uid and gid and an octal mode, as a claim's annotations hold them.
func ParseOwnership(uid, gid, mode string) (Ownership, error) {
	u, err := strconv.ParseUint(uid, 10, 31)
	if err != nil {
		return Ownership{}, fmt.Errorf("uid %q: not a decimal user id", uid)
	}
	g, err := strconv.ParseUint(gid, 10, 31)
	if err != nil {
		return Ownership{}, fmt.Errorf("gid %q: not a decimal group id", gid)
	}
	m, err := strconv.ParseUint(mode, 8, 32)
	if err != nil || m > 0o777 {
		return Ownership{}, fmt.Errorf("mode %q: not octal permission bits", mode)
	}
	return Ownership{UID: int(u), GID: int(g), Mode: fs.FileMode(m)}, nil
}

// Root is the directory under which every volume directory lives.
type Root struct {
	dir string
	mu  sync.Mutex
	// root is dir as it was last opened. A disk mounted on dir (or above it) after that is not
	// what root reaches: current opens dir anew when it is another directory than root's.
	root *os.Root
}

// Open opens dir as a Root; it must exist.
func Open(dir string) (*Root, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &Root{dir: dir, root: root}, nil
}

// Close releases the root.
func (r *Root) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.root.Close()
}

// Dir is the root's path.
func (r *Root) Dir() string { return r.dir }

// current is the root as the directory at its path is now: a disk mounted there since it was
// opened (the host's mounts reach the agent's pod with HostToContainer propagation) is reopened,
// so that the agent sees the data, not the empty directory beneath it.
func (r *Root) current() (*os.Root, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now, err := os.Stat(r.dir)
	if err != nil {
		return nil, err
	}
	if held, err := r.root.Stat("."); err == nil && os.SameFile(now, held) {
		return r.root, nil
	}
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return nil, err
	}
	// The one replaced stays open: an operation of another goroutine may still be using it.
	r.root = root
	return root, nil
}

// ErrSymlink is returned when a directory on the way to a volume's path is a symbolic link.
var ErrSymlink = errors.New("a directory on the way is a symbolic link")

// open checks rel and returns the current root, refusing a path through a symbolic link: os.Root
// follows links that stay inside it, so <ns>/<app>.<server> turned into a link to another
// server's directory would make the agent act on that server's volumes.
func (r *Root) open(rel string) (*os.Root, error) {
	if err := checkPath(rel); err != nil {
		return nil, err
	}
	root, err := r.current()
	if err != nil {
		return nil, err
	}
	for dir := filepath.Dir(rel); dir != "."; dir = filepath.Dir(dir) {
		fi, err := root.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s: %s: %w", rel, dir, ErrSymlink)
		}
	}
	return root, nil
}

// checkPath refuses a path that is empty, absolute or climbs with "..": volume paths are built
// from validated names, so such a path is a bug or an attack, never something to resolve.
func checkPath(rel string) error {
	if rel == "" || rel == "." || !filepath.IsLocal(rel) || filepath.Clean(rel) != rel {
		return fmt.Errorf("path %q is not a clean path below the host root", rel)
	}
	return nil
}

// ErrMissing is returned by Repair when the directory does not exist.
var ErrMissing = errors.New("directory is missing")

// Result says what Ensure or Repair did.
type Result struct {
	// Created is true when the directory did not exist.
	Created bool
	// Repaired is true when an existing directory's owner or mode was changed.
	Repaired bool
	// Was is what an existing directory had before.
	Was Ownership
	// HeldData is true when an existing directory was not empty.
	HeldData bool
}

// Ensure makes rel a directory with ownership o. A missing directory is created (its missing
// parents owned by this process, mode 0755); an existing one is adopted as it is, contents
// untouched, and only its owner and mode are set.
func (r *Root) Ensure(rel string, o Ownership) (Result, error) {
	return r.ensure(rel, o, true)
}

// Repair sets the owner and mode of the existing directory rel to o, and never creates it: a
// missing directory (a data disk that is not mounted, say) is ErrMissing, for the caller to
// report rather than to replace with an empty one.
func (r *Root) Repair(rel string, o Ownership) (Result, error) {
	return r.ensure(rel, o, false)
}

func (r *Root) ensure(rel string, o Ownership, create bool) (Result, error) {
	root, err := r.open(rel)
	if err != nil {
		return Result{}, err
	}
	var res Result
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !create:
		return Result{}, fmt.Errorf("%s: %w", rel, ErrMissing)
	case errors.Is(err, fs.ErrNotExist):
		if parent := filepath.Dir(rel); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return Result{}, err
			}
		}
		// Closed until its owner and mode are right.
		if err := root.Mkdir(rel, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return Result{}, err
		}
		res.Created = true
		if fi, err = root.Lstat(rel); err != nil {
			return Result{}, err
		}
	case err != nil:
		return Result{}, err
	}
	if !fi.IsDir() {
		return Result{}, fmt.Errorf("%s: %w", rel, ErrNotDirectory)
	}
	if !res.Created {
		if res.HeldData, err = hasEntries(root, rel); err != nil {
			return Result{}, err
		}
	}
	res.Was = ownershipOf(fi)
	if res.Was.UID != o.UID || res.Was.GID != o.GID {
		if err := root.Lchown(rel, o.UID, o.GID); err != nil {
			if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
				return res, fmt.Errorf("%s to %d:%d (the agent runs as uid %d): %w", rel, o.UID, o.GID, os.Geteuid(), ErrNeedsRoot)
			}
			return res, err
		}
	}
	// Chmod after chown: chown clears the set-id bits.
	if res.Was.Mode != o.Mode || res.Was.UID != o.UID || res.Was.GID != o.GID {
		if err := root.Chmod(rel, o.Mode); err != nil {
			return res, err
		}
	}
	res.Repaired = !res.Created && res.Was != o
	return res, nil
}

// HoldsData says whether rel is a directory that holds anything; a missing one holds nothing.
func (r *Root) HoldsData(rel string) (bool, error) {
	root, fi, err := r.existingDir(rel)
	if err != nil || fi == nil {
		return false, err
	}
	return hasEntries(root, rel)
}

// existingDir is the current root and what rel is in it: a directory, or nil when missing.
// Anything else there is ErrNotDirectory.
func (r *Root) existingDir(rel string) (*os.Root, fs.FileInfo, error) {
	root, err := r.open(rel)
	if err != nil {
		return nil, nil, err
	}
	fi, err := root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return root, nil, nil
	case err != nil:
		return nil, nil, err
	case !fi.IsDir():
		return nil, nil, fmt.Errorf("%s: %w", rel, ErrNotDirectory)
	}
	return root, fi, nil
}

// hasEntries says whether the directory rel holds anything.
func hasEntries(root *os.Root, rel string) (bool, error) {
	f, err := root.Open(rel)
	if err != nil {
		return false, err
	}
	defer func() { _ = f.Close() }()
	names, err := f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return false, nil
	}
	return len(names) > 0, err
}

// Ownership is the owner, group and mode bits rel has.
func (r *Root) Ownership(rel string) (Ownership, error) {
	_, fi, err := r.existingDir(rel)
	if err != nil {
		return Ownership{}, err
	}
	if fi == nil {
		return Ownership{}, fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	return ownershipOf(fi), nil
}

// Missing returns the paths of rels that are not there: an entry on the way, or the path
// itself, does not exist. It says what Ownership's fs.ErrNotExist says, path by path, in one
// pass: each directory on the way is looked at and opened once for every path below it, not
// once per path, so that checking every volume of a node costs a few calls per volume, and no
// more directories are open at once than a path is deep. A path that is not clean, or that leads
// through a symbolic link or something other than a directory, is not missing (Ownership gives
// another error for it).
func (r *Root) Missing(rels []string) ([]string, error) {
	root, err := r.current()
	if errors.Is(err, fs.ErrNotExist) {
		// The root itself is gone: so is every path below it.
		return slices.DeleteFunc(slices.Clone(rels), func(rel string) bool { return checkPath(rel) != nil }), nil
	}
	if err != nil {
		return nil, err
	}
	// In sorted order, the paths below a directory come one after the other: only the directories
	// on the way to the path at hand are held open, and each is opened once.
	sorted := slices.Compact(slices.Sorted(slices.Values(rels)))
	type opened struct {
		dir string
		d   *os.Root
		err error // why dir could not be opened (then d is nil)
	}
	chain := []opened{{dir: ".", d: root}}
	closeTop := func() {
		if top := chain[len(chain)-1]; top.d != nil {
			_ = top.d.Close()
		}
		chain = chain[:len(chain)-1]
	}
	defer func() {
		for len(chain) > 1 {
			closeTop()
		}
	}()
	gone := map[string]bool{}
	for _, rel := range sorted {
		if checkPath(rel) != nil {
			continue
		}
		dir := filepath.Dir(rel)
		for len(chain) > 1 && !leadsTo(chain[len(chain)-1].dir, dir) {
			closeTop()
		}
		for top := chain[len(chain)-1]; top.dir != dir; top = chain[len(chain)-1] {
			rest := dir
			if top.dir != "." {
				rest = strings.TrimPrefix(dir, top.dir+"/")
			}
			name, _, _ := strings.Cut(rest, "/")
			next := opened{dir: filepath.Join(top.dir, name), err: top.err}
			if next.err == nil {
				next.d, next.err = subdir(top.d, name)
			}
			chain = append(chain, next)
		}
		top := chain[len(chain)-1]
		err := top.err
		if err == nil {
			_, err = top.d.Lstat(filepath.Base(rel))
		}
		gone[rel] = errors.Is(err, fs.ErrNotExist)
	}
	var missing []string
	for _, rel := range rels {
		if gone[rel] {
			missing = append(missing, rel)
		}
	}
	return missing, nil
}

// leadsTo says whether directory d is dir or on the way to it (both clean, below the root).
func leadsTo(d, dir string) bool {
	return d == dir || strings.HasPrefix(dir, d+"/")
}

// subdir opens the directory name of parent, refusing a symbolic link or anything else.
func subdir(parent *os.Root, name string) (*os.Root, error) {
	fi, err := parent.Lstat(name)
	switch {
	case err != nil:
		return nil, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%s: %w", name, ErrSymlink)
	case !fi.IsDir():
		return nil, fmt.Errorf("%s: %w", name, ErrNotDirectory)
	}
	d, err := parent.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	// OpenRoot follows a link: name must still be the directory Lstat saw.
	if now, err := d.Stat("."); err != nil || !os.SameFile(fi, now) {
		_ = d.Close()
		return nil, fmt.Errorf("%s: changed while it was opened: %w", name, ErrSymlink)
	}
	return d, nil
}

func ownershipOf(fi fs.FileInfo) Ownership {
	o := Ownership{UID: -1, GID: -1, Mode: fi.Mode() & permBits}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		o.UID, o.GID = int(st.Uid), int(st.Gid)
	}
	return o
}

// RemoveAll removes rel and everything below it. Symbolic links are removed, never followed.
// A missing rel is not an error.
func (r *Root) RemoveAll(rel string) error {
	root, err := r.open(rel)
	if err != nil {
		return err
	}
	return root.RemoveAll(rel)
}

// Rename renames from to to, both below the root; to must not exist.
func (r *Root) Rename(from, to string) error {
	root, err := r.open(from)
	if err != nil {
		return err
	}
	if _, err := r.open(to); err != nil {
		return err
	}
	if _, err := root.Lstat(to); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("renaming %s to %s: %w", from, to, fs.ErrExist)
	}
	return root.Rename(from, to)
}

// RemoveIfEmpty removes rel if it is an empty directory, and says whether it did.
func (r *Root) RemoveIfEmpty(rel string) (bool, error) {
	root, fi, err := r.existingDir(rel)
	if err != nil || fi == nil {
		return false, err
	}
	err = root.Remove(rel)
	if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
		return false, nil
	}
	return err == nil, err
}

// asideMarker joins a directory's path and an id in the name of the place Aside moves it to.
const asideMarker = ".deleting-"

// Aside is where rel is moved before it is removed: beside it, named after id. A dot is in no
// volume name, so it is no volume's directory.
func Aside(rel, id string) string {
	return rel + asideMarker + id
}

// IsAside says whether rel is a place Aside names: what a removal that did not finish left.
func IsAside(rel string) bool {
	return strings.Contains(filepath.Base(rel), asideMarker)
}

// ErrTooManyEntries is returned by VolumeDirs when the directories hold more entries than it may
// read.
var ErrTooManyEntries = errors.New("more entries than the listing may read")

// volumeDepth is how far below the root volume directories are: <namespace>/<app>.<server>/<volume>.
const volumeDepth = 3

// VolumeDirs lists, sorted, the directories exactly three levels below the root, where volume
// directories are (<namespace>/<app>.<server>/<volume>), and the entries of that level that
// Aside names, of any type. It only reads: it descends into directories only, never through a
// symbolic link (a link is neither followed nor listed), and reads at most limit directory
// entries in all. What it could not read (a directory it may not open, entries past the limit)
// is said in the error, which comes with whatever it did find.
func (r *Root) VolumeDirs(limit int) ([]string, error) {
	root, err := r.current()
	if err != nil {
		return nil, err
	}
	l := &lister{budget: limit}
	l.list(root, ".", 1)
	slices.Sort(l.found)
	return l.found, errors.Join(l.errs...)
}

// lister walks the levels above the volume directories for VolumeDirs, within a budget of entries.
type lister struct {
	budget    int
	exhausted bool
	found     []string
	errs      []error
}

// list reads the directory dir, rel below the root, whose entries are depth levels below it:
// at volumeDepth it lists them, above it descends into those that are directories.
func (l *lister) list(dir *os.Root, rel string, depth int) {
	entries, err := l.read(dir)
	if err != nil {
		l.fail(rel, err)
	}
	for _, e := range entries {
		child := filepath.Join(rel, e.Name())
		switch {
		case depth == volumeDepth:
			if e.IsDir() || IsAside(child) {
				l.found = append(l.found, child)
			}
		case e.IsDir() && !l.exhausted: // a symbolic link is no directory here: never followed
			sub, err := openDir(dir, e.Name())
			if err != nil {
				l.fail(child, err)
				continue
			}
			l.list(sub, child, depth+1)
			_ = sub.Close()
		}
	}
}

// readBatch is how many entries read asks for at a time.
const readBatch = 256

// read lists dir's entries, as many as the budget has left.
func (l *lister) read(dir *os.Root) ([]fs.DirEntry, error) {
	f, err := dir.Open(".")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var entries []fs.DirEntry
	for {
		if l.budget <= 0 {
			if more, _ := f.ReadDir(1); len(more) > 0 {
				l.exhausted = true
				return entries, ErrTooManyEntries
			}
			return entries, nil
		}
		batch, err := f.ReadDir(min(l.budget, readBatch))
		l.budget -= len(batch)
		entries = append(entries, batch...)
		if errors.Is(err, io.EOF) {
			return entries, nil
		}
		if err != nil {
			return entries, err
		}
	}
}

// fail records that rel could not be read, saying why where the cause is not being root.
func (l *lister) fail(rel string, err error) {
	if errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0 {
		err = fmt.Errorf("%w (the agent runs as uid %d, not root)", err, os.Geteuid())
	}
	l.errs = append(l.errs, fmt.Errorf("listing %s: %w", rel, err))
}

// openDir opens the directory name of dir as a root of its own, only if it is the directory
// that dir holds under that name: one replaced by a symbolic link meanwhile is refused, not
// followed.
func openDir(dir *os.Root, name string) (*os.Root, error) {
	fi, err := dir.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, ErrNotDirectory
	}
	sub, err := dir.OpenRoot(name)
	if err != nil {
		return nil, err
	}
	if held, err := sub.Stat("."); err != nil || !os.SameFile(fi, held) {
		_ = sub.Close()
		return nil, errors.New("replaced while it was being listed")
	}
	return sub, nil
}
