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
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Usage is what a directory tree holds, counted as du -x counts it: the space its entries take on
// disk (allocated blocks, so a sparse file counts what it uses) and its inodes, the directory
// itself included and each hard-linked file once.
type Usage struct {
	Bytes, Inodes int64
}

// maxMeasureDepth is how deep below a volume's directory a measure descends; what lies deeper is
// left out and said in Err. Each level holds a directory open while the pass lasts.
const maxMeasureDepth = 256

// Measure is one pass over a volume's directory, made a step at a time so that the work of one
// step is bounded however many files the volume holds. It reads entries with lstat only: a
// symbolic link is counted, never followed, and a directory is entered only if it is the one its
// parent lists under that name (one replaced by a link meanwhile is not) and is on the volume's
// filesystem (a disk mounted inside the volume is not measured, nor counted); every directory is opened
// below the one above it (os.Root), so nothing outside the volume is ever read. A tree that
// changes while it is measured gives a count of some moment of each directory, as du does.
type Measure struct {
	rel   string
	dev   uint64
	stack []*measureDir
	seen  map[fileID]struct{} // hard-linked files counted already, at most maxLinkedFiles
	usage Usage
	// errs are the first maxMeasureErrors things the pass could not read; failed counts them all.
	errs    []error
	failed  int
	entries int // entries read so far
}

// maxMeasureErrors is how many of the things a pass could not read it says; it counts the rest.
// A volume's contents are its user's: nothing they hold may grow the agent's memory unbounded.
const maxMeasureErrors = 10

// maxLinkedFiles is how many hard-linked files a pass remembers, to count each once; past that
// it counts every further link of a file as a file of its own (and says so), rather than
// growing the agent's memory with what a volume holds.
const maxLinkedFiles = 100_000

// measureDir is a directory the pass is reading: the names it has read and not counted yet are
// pending. The pass enters a subdirectory as soon as it meets it, so the stack of directories
// is as deep as the tree, however many subdirectories one directory holds.
type measureDir struct {
	root    *os.Root
	f       *os.File
	rel     string
	pending []string
	eof     bool
}

type fileID struct{ dev, ino uint64 }

// Measure starts a pass over the directory rel, which must exist. Close it when done with it.
func (r *Root) Measure(rel string) (*Measure, error) {
	root, fi, err := r.existingDir(rel)
	if err != nil {
		return nil, err
	}
	if fi == nil {
		return nil, fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
	}
	dir, err := openDir(root, rel)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rel, err)
	}
	f, err := dir.Open(".")
	if err != nil {
		_ = dir.Close()
		return nil, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	m := &Measure{rel: rel, dev: st.Dev, seen: map[fileID]struct{}{}}
	m.count(st)
	m.stack = []*measureDir{{root: dir, f: f, rel: rel}}
	return m, nil
}

// Step reads at most budget entries and says whether the pass is over.
func (m *Measure) Step(budget int) bool {
	for budget > 0 && len(m.stack) > 0 {
		top := m.stack[len(m.stack)-1]
		if len(top.pending) == 0 {
			if top.eof {
				m.pop()
				continue
			}
			names, err := top.f.Readdirnames(readBatch)
			top.pending = names
			switch {
			case errors.Is(err, io.EOF) || err == nil && len(names) == 0:
				top.eof = true
			case err != nil:
				m.fail(fmt.Errorf("reading %s: %w", top.rel, err))
				top.eof = true
			}
			continue
		}
		name := top.pending[0]
		top.pending = top.pending[1:]
		budget--
		m.entries++
		m.entry(top, name)
	}
	return len(m.stack) == 0
}

// entry counts the entry name of dir, and enters it if it is a directory to measure.
func (m *Measure) entry(dir *measureDir, name string) {
	rel := filepath.Join(dir.rel, name)
	fi, err := dir.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return // gone since it was listed
	}
	if err != nil {
		m.fail(fmt.Errorf("reading %s: %w", rel, err))
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	if st.Dev != m.dev {
		return // a filesystem mounted inside the volume: neither counted nor entered, as du -x
	}
	m.count(st)
	if !fi.IsDir() {
		return
	}
	if len(m.stack) >= maxMeasureDepth {
		m.fail(fmt.Errorf("%s: more than %d levels deep; not measured below", rel, maxMeasureDepth))
		return
	}
	sub, err := openDir(dir.root, name)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err != nil {
		m.fail(fmt.Errorf("opening %s: %w", rel, err))
		return
	}
	f, err := sub.Open(".")
	if err != nil {
		_ = sub.Close()
		m.fail(fmt.Errorf("opening %s: %w", rel, err))
		return
	}
	m.stack = append(m.stack, &measureDir{root: sub, f: f, rel: rel})
}

// fail records something the pass could not read.
func (m *Measure) fail(err error) {
	if m.failed++; len(m.errs) < maxMeasureErrors {
		m.errs = append(m.errs, err)
	}
}

// count adds an inode, once however many links it has.
func (m *Measure) count(st *syscall.Stat_t) {
	if st.Nlink > 1 && st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		id := fileID{st.Dev, st.Ino}
		if _, ok := m.seen[id]; ok {
			return
		}
		if len(m.seen) < maxLinkedFiles {
			m.seen[id] = struct{}{}
		} else if len(m.seen) == maxLinkedFiles {
			m.seen[fileID{}] = struct{}{} // said once
			m.fail(fmt.Errorf("%s: more than %d hard-linked files: further links counted as files", m.rel,
				maxLinkedFiles))
		}
	}
	m.usage.Inodes++
	m.usage.Bytes += st.Blocks * 512 // st_blocks is in 512-byte units whatever the block size
}

func (m *Measure) pop() {
	top := m.stack[len(m.stack)-1]
	_ = top.f.Close()
	_ = top.root.Close()
	m.stack = m.stack[:len(m.stack)-1]
}

// Usage is what the pass has counted so far: the volume's usage once Step said it is over.
func (m *Measure) Usage() Usage { return m.usage }

// Entries is how many directory entries the pass has read so far.
func (m *Measure) Entries() int { return m.entries }

// Err says what the pass could not read (it is counted without it), once it is over: the first
// few things, and how many in all.
func (m *Measure) Err() error {
	if m.failed > len(m.errs) {
		return errors.Join(append(m.errs, fmt.Errorf("and %d more", m.failed-len(m.errs)))...)
	}
	return errors.Join(m.errs...)
}

// Close ends the pass, over or not, releasing the directories it holds open.
func (m *Measure) Close() {
	for len(m.stack) > 0 {
		m.pop()
	}
}

// FilesystemStats are the size and free space of a filesystem, as statfs gives them.
type FilesystemStats struct {
	// Bytes is the filesystem's size; BytesAvailable what unprivileged users may still write.
	Bytes, BytesAvailable uint64
	// Inodes is how many inodes the filesystem has; InodesFree how many are free.
	Inodes, InodesFree uint64
}

// Filesystem is the size and free space of the root's filesystem (the one mounted at its path
// now).
func (r *Root) Filesystem() (FilesystemStats, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(r.dir, &st); err != nil {
		return FilesystemStats{}, err
	}
	// Blocks count in fragment-size units (Frsize); Bsize, the preferred I/O size, is the same on
	// local filesystems but not on every network or FUSE one.
	bsize := uint64(st.Frsize)
	if bsize == 0 {
		bsize = uint64(st.Bsize)
	}
	return FilesystemStats{Bytes: st.Blocks * bsize, BytesAvailable: st.Bavail * bsize, Inodes: st.Files,
		InodesFree: st.Ffree}, nil
}
