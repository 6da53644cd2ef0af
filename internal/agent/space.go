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

package agent

// Full-disk protection: the agent makes no new volume on a node whose host root's filesystem
// is nearly full for a pod that has nothing there yet, and says so on the Node (label
// tars.io/DiskFull, which the pods of servers with node-local volumes prefer to avoid) until
// there is room again. Volumes made already are untouched: their pods come back to them, their
// directories are kept and cleaned up as ever.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

// Defaults of the free-space floors: above the kubelet's own eviction thresholds
// (nodefs.available 10%, nodefs.inodesFree 5%), so that, where the host root shares the
// kubelet's filesystem, new volumes stop going there before the kubelet starts evicting pods;
// and below where its image garbage collection starts (85% used), which a node sharing that
// filesystem sits at in the normal course.
const (
	DefaultMinFreeSpace  = "12%"
	DefaultMinFreeInodes = "10%"
)

// clearMargin is how far above its floor free space or inodes must be before a node marked full
// is unmarked, as a share of the filesystem, at most a fifth of the floor (clearFloorShare):
// without it, a node at its floor would gain and lose the mark (and every pending claim's
// verdict) with each file written.
const (
	clearMargin     = 0.02
	clearFloorShare = 5
)

// defaultDiskCheckInterval is how often the host root's free space is read when the agent is not
// told (Config.DiskCheckInterval).
const defaultDiskCheckInterval = 10 * time.Second

// FreeFloor is how much of a filesystem's space or inodes must stay free: a share of it
// ("12%") or an amount ("20Gi" of space, "100000" inodes). The zero value keeps nothing free.
type FreeFloor struct {
	// Percent is the share, when the floor is one; else Amount is.
	Percent float64
	Amount  uint64
	// IsPercent says which of the two the floor is.
	IsPercent bool
	// inodes says the floor counts inodes, a plain number, not a quantity of bytes.
	inodes bool
}

// ParseFreeFloor reads a floor of free space (inodes false: "12%", "20Gi", "0") or of free
// inodes (inodes true: "10%", "100000").
func ParseFreeFloor(s string, inodes bool) (FreeFloor, error) {
	f := FreeFloor{inodes: inodes}
	if percent, ok := strings.CutSuffix(s, "%"); ok {
		p, err := strconv.ParseFloat(percent, 64)
		if err != nil || math.IsNaN(p) || p < 0 || p > 100 {
			return f, fmt.Errorf("%q is not a percentage from 0%% to 100%%", s)
		}
		f.Percent, f.IsPercent = p, true
		return f, nil
	}
	if inodes {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return f, fmt.Errorf("%q is neither a percentage (10%%) nor a number of inodes (100000)", s)
		}
		f.Amount = n
		return f, nil
	}
	q, err := resource.ParseQuantity(s)
	if err != nil || q.Sign() < 0 {
		return f, fmt.Errorf("%q is neither a percentage (12%%) nor an amount of bytes (20Gi)", s)
	}
	n := q.Value() // rounded up, and capped at the largest int64
	if q.Cmp(*resource.NewQuantity(n, q.Format)) != 0 || n == math.MaxInt64 {
		// 500m is half a byte, not 500 megabytes; 10E does not fit.
		return f, fmt.Errorf("%q is not a whole number of bytes up to 8Ei (for megabytes, write 500M or 500Mi)", s)
	}
	f.Amount = uint64(n)
	return f, nil
}

// String is the floor as ParseFreeFloor reads it.
func (f FreeFloor) String() string {
	switch {
	case f.IsPercent:
		return strconv.FormatFloat(f.Percent, 'f', -1, 64) + "%"
	case f.inodes:
		return strconv.FormatUint(f.Amount, 10)
	}
	return resource.NewQuantity(int64(min(f.Amount, math.MaxInt64)), resource.BinarySI).String()
}

// of is the floor on a filesystem of total bytes or inodes.
func (f FreeFloor) of(total uint64) uint64 {
	if f.IsPercent {
		return uint64(math.Ceil(float64(total) * f.Percent / 100))
	}
	return f.Amount
}

// fullness says which of the host root's space and inodes are below their floors.
type fullness struct {
	space, inodes bool
}

// label is the value of tars.io/DiskFull for f, "" for a node with room.
func (f fullness) label() string {
	switch {
	case f.space && f.inodes:
		return tarsv1beta1.DiskFullSpaceAndInodes
	case f.space:
		return tarsv1beta1.DiskFullSpace
	case f.inodes:
		return tarsv1beta1.DiskFullInodes
	}
	return ""
}

// fullnessOf reads a tars.io/DiskFull label back; an unknown value counts as both.
func fullnessOf(label string, labelled bool) fullness {
	switch {
	case !labelled:
		return fullness{}
	case label == tarsv1beta1.DiskFullSpace:
		return fullness{space: true}
	case label == tarsv1beta1.DiskFullInodes:
		return fullness{inodes: true}
	}
	return fullness{space: true, inodes: true}
}

// below says whether free is below floor on a filesystem of total, for a resource that was
// below it (wasFull) or not: leaving the floor takes clearMargin of the filesystem more, at most
// a fifth of the floor. A total of 0 is a
// filesystem that does not count the resource: never below.
func below(free, total uint64, floor FreeFloor, wasFull bool) bool {
	limit := floor.of(total)
	if limit == 0 || total == 0 {
		return false // no floor, or a filesystem that does not count this (btrfs has no inode count)
	}
	if wasFull {
		margin := min(uint64(math.Ceil(float64(total)*clearMargin)), limit/clearFloorShare+1)
		limit += min(margin, math.MaxUint64-limit) // saturating: a floor of exabytes stays one
	}
	return free < limit
}

// spaceWatch keeps the node's tars.io/DiskFull label true to its host root's filesystem: it
// reads the filesystem every DiskCheckInterval and whenever provisioning finds it changed.
type spaceWatch struct {
	*Agent
	cache cache.Cache
	// changed wakes the watch at once (provisioning saw the node's fullness change).
	changed chan struct{}

	mu sync.Mutex
	// now is the node's fullness as last judged, from the label at start.
	now fullness
	// stats are the figures it was judged on.
	stats hostfs.FilesystemStats
	// known says whether now was judged or read from the label yet.
	known bool
}

// judged is what spaceWatch.judge saw: the fullness, whether it changed, the figures.
type judged struct {
	now     fullness
	changed bool
	stats   hostfs.FilesystemStats
}

func newSpaceWatch(a *Agent, c cache.Cache) *spaceWatch {
	return &spaceWatch{Agent: a, cache: c, changed: make(chan struct{}, 1)}
}

// NeedLeaderElection is false: each agent watches its own node.
func (w *spaceWatch) NeedLeaderElection() bool { return false }

// Start marks or unmarks the node once the caches have filled, then every DiskCheckInterval
// and whenever provisioning sees the fullness change, until ctx ends.
func (w *spaceWatch) Start(ctx context.Context) error {
	if !w.cache.WaitForCacheSync(ctx) {
		return nil
	}
	log := ctrl.Log.WithName("agent").WithName("space").WithValues("node", w.NodeName)
	ctx = logf.IntoContext(ctx, log)
	ticker := time.NewTicker(w.DiskCheckInterval)
	defer ticker.Stop()
	for {
		if j, err := w.judge(ctx); err == nil {
			w.mark(ctx, j)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case <-w.changed:
		}
	}
}

// judge reads the host root's filesystem and judges the node's fullness from it and from what
// it was (the label, the first time); on a failed read it keeps the last judgement. The lock is
// held across the read, so that judgements are made in the order of their figures.
func (w *spaceWatch) judge(ctx context.Context) (judged, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	stats, err := w.filesystem()
	if !w.known {
		if node, nodeErr := w.node(ctx); nodeErr == nil {
			label, labelled := node.Labels[tarsv1beta1.LabelDiskFull]
			w.now, w.known = fullnessOf(label, labelled), true
		}
	}
	if err != nil {
		agentErrors.WithLabelValues(reasonDiskCheck).Inc()
		logf.FromContext(ctx).Error(err, "Failed to read the host root's filesystem; the node keeps its mark",
			"hostRoot", w.HostRoot)
		return judged{now: w.now, stats: w.stats}, err
	}
	was := w.now
	w.now = fullness{
		space:  below(stats.BytesAvailable, stats.Bytes, w.MinFreeSpace, was.space),
		inodes: below(stats.InodesFree, stats.Inodes, w.MinFreeInodes, was.inodes),
	}
	w.stats = stats
	hostRootBytes.WithLabelValues(w.NodeName, "capacity").Set(float64(stats.Bytes))
	hostRootBytes.WithLabelValues(w.NodeName, "available").Set(float64(stats.BytesAvailable))
	hostRootInodes.WithLabelValues(w.NodeName, "capacity").Set(float64(stats.Inodes))
	hostRootInodes.WithLabelValues(w.NodeName, "available").Set(float64(stats.InodesFree))
	diskFull.WithLabelValues(w.NodeName, tarsv1beta1.DiskFullSpace).Set(boolGauge(w.now.space))
	diskFull.WithLabelValues(w.NodeName, tarsv1beta1.DiskFullInodes).Set(boolGauge(w.now.inodes))
	return judged{now: w.now, changed: w.now != was, stats: stats}, nil
}

func (w *spaceWatch) filesystem() (hostfs.FilesystemStats, error) {
	if w.Filesystem != nil {
		return w.Filesystem()
	}
	return w.Root.Filesystem()
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// mark sets the node's tars.io/DiskFull label to judgement j, if it differs, with an event on
// the node saying why. The cached Node may not have seen the last mark yet: a difference is
// read again from the API server before it is written.
func (w *spaceWatch) mark(ctx context.Context, j judged) {
	want := j.now.label()
	differs := func(node *corev1.Node) bool {
		label, labelled := node.Labels[tarsv1beta1.LabelDiskFull]
		return label != want || labelled != (want != "")
	}
	node, err := w.node(ctx)
	if err == nil && differs(node) {
		node = &corev1.Node{}
		err = w.APIReader.Get(ctx, client.ObjectKey{Name: w.NodeName}, node)
	}
	if err != nil {
		logf.FromContext(ctx).Error(err, "Failed to read the node to mark its disk")
		return
	}
	if !differs(node) {
		return
	}
	was := node.Labels[tarsv1beta1.LabelDiskFull]
	patch := client.MergeFrom(node.DeepCopy())
	if want == "" {
		delete(node.Labels, tarsv1beta1.LabelDiskFull)
	} else {
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		node.Labels[tarsv1beta1.LabelDiskFull] = want
	}
	if err := w.Patch(ctx, node, patch); err != nil {
		agentErrors.WithLabelValues(reasonDiskCheck).Inc()
		logf.FromContext(ctx).Error(err, "Failed to mark the node's disk", "label", tarsv1beta1.LabelDiskFull, "value", want)
		return
	}
	logf.FromContext(ctx).Info("Marked the node's disk", "label", tarsv1beta1.LabelDiskFull, "value", want,
		"was", was, "free", w.describe(j.stats))
	if want == "" {
		w.Recorder.Eventf(node, nil, corev1.EventTypeNormal, "DiskSpaceAvailable", "CheckDisk",
			"The host root %s has room again (%s): new volumes may be made on this node", w.HostRoot,
			w.describe(j.stats))
		return
	}
	w.Recorder.Eventf(node, nil, corev1.EventTypeWarning, "DiskFull", "CheckDisk",
		"The host root %s is nearly full (%s): no new volume is made on this node for a pod that has none here, "+
			"and it is labelled %s=%s until free space and inodes are back above their floors with a margin; "+
			"volumes made already are untouched", w.HostRoot, w.describe(j.stats), tarsv1beta1.LabelDiskFull, want)
}

// describe says how much of the filesystem is free, against the floors.
func (w *spaceWatch) describe(s hostfs.FilesystemStats) string {
	return fmt.Sprintf("%s of %s free (%s), floor %s (--min-free-space); %d of %d inodes free (%s), floor %s "+
		"(--min-free-inodes)", gib(s.BytesAvailable), gib(s.Bytes), share(s.BytesAvailable, s.Bytes), w.MinFreeSpace,
		s.InodesFree, s.Inodes, share(s.InodesFree, s.Inodes), w.MinFreeInodes)
}

func gib(n uint64) string { return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30)) }

func share(part, whole uint64) string {
	if whole == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*float64(part)/float64(whole))
}

// full is the node's fullness now, from its filesystem read afresh, and wakes the watch to mark
// the node when it changed. Unreadable, it is not full: making a directory there says what is
// wrong.
func (w *spaceWatch) full(ctx context.Context) fullness {
	j, err := w.judge(ctx)
	if err != nil {
		return fullness{}
	}
	if j.changed {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
	return j.now
}

// refusal says why no new volume of group g may be made on this node now, from the filesystem
// as it is (read afresh: the label is for the scheduler, and may lag), or "" when there is room
// or the volume costs none worth refusing: a delay-bind volume (an empty directory), a directory
// of the group that is there already (data coming back), or a pod tied to this node (tied: a
// volume or data of its here, so that refusing would only keep it down, or send it away from
// its data). The text stays the same while the node stays full (a claim and its TServer's
// status quote it); the figures are in the node's event and the metrics.
func (w *spaceWatch) refusal(ctx context.Context, g group, tied func() (bool, error)) (string, error) {
	if g.volume == tarsv1beta1.DelayBindVolumeName {
		return "", nil
	}
	if _, err := w.Root.Ownership(g.dir()); !errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	var short string
	switch now := w.full(ctx); {
	case now.space && now.inodes:
		short = fmt.Sprintf("less free space and fewer free inodes than the agent keeps (--min-free-space %s, "+
			"--min-free-inodes %s)", w.MinFreeSpace, w.MinFreeInodes)
	case now.space:
		short = fmt.Sprintf("less free space than the agent keeps (--min-free-space %s)", w.MinFreeSpace)
	case now.inodes:
		short = fmt.Sprintf("fewer free inodes than the agent keeps (--min-free-inodes %s)", w.MinFreeInodes)
	default:
		return "", nil
	}
	if isTied, err := tied(); isTied || err != nil {
		return "", err
	}
	return fmt.Sprintf("the node's disk is full: its host root %s has %s; it is labelled %s until there is room",
		w.HostRoot, short, tarsv1beta1.LabelDiskFull), nil
}
