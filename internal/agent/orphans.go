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

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

// orphanScanLimit is how many directory entries one scan reads at the most: the scan's work is
// bounded whatever the host root holds.
const orphanScanLimit = 100_000

// noteLimit is how long an event's note may be, in bytes.
const noteLimit = 1024

// orphanScanner reports the directories below this node's host root, where volume directories
// are, that no volume uses: left by a volume deleted while its node was away (the manager's
// node-loss handling), by a deleted retained volume, by TarsK8S's inverted reclaim, or aside by
// a cleanup that did not finish. It never changes them: it reports, in an event on the node,
// a log line and metrics, and nothing else.
type orphanScanner struct {
	*Agent
	cache cache.Cache
	state orphanState
}

// NeedLeaderElection is false: each agent scans its own node.
func (s *orphanScanner) NeedLeaderElection() bool { return false }

// Start scans once the caches have filled, then every OrphanScanInterval, until ctx ends.
func (s *orphanScanner) Start(ctx context.Context) error {
	if !s.cache.WaitForCacheSync(ctx) {
		return nil
	}
	log := ctrl.Log.WithName("agent").WithName("orphan-scan").WithValues("node", s.NodeName)
	ctx = logf.IntoContext(ctx, log)
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if err := s.scan(ctx); err != nil {
			agentErrors.WithLabelValues(reasonOrphanScan).Inc()
			log.Error(err, "Failed to scan the host root for orphaned directories", "hostRoot", s.HostRoot)
		}
	}, s.OrphanScanInterval)
	return nil
}

// scan finds the orphaned directories, keeps the metrics in step, and reports the new ones.
func (s *orphanScanner) scan(ctx context.Context) error {
	found, listErr, err := s.findOrphans(ctx, false)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(found, func(p string) bool { return !s.state.reported[p] }) {
		// A directory and its volume are made, or deleted, one after the other: before saying a
		// directory is new and unused, look again, with neither changing meanwhile.
		if found, listErr, err = s.findOrphans(ctx, true); err != nil {
			return err
		}
	}
	unreported, gone := s.state.observe(found, listErr == nil)
	for _, p := range gone {
		orphanedDirectory.DeleteLabelValues(p)
		orphanedDirectoryBytes.DeleteLabelValues(p)
	}
	for p := range s.state.seen {
		orphanedDirectory.WithLabelValues(p).Set(1)
	}
	orphanedDirectories.Set(float64(len(s.state.seen)))
	log := logf.FromContext(ctx)
	if len(gone) > 0 {
		log.Info("Found directories no longer orphaned", "paths", gone)
	}
	if len(unreported) > 0 {
		log.Info("Found orphaned directories", "paths", unreported, "orphaned", len(s.state.seen))
		if err := s.reportOrphans(ctx, unreported); err != nil {
			return fmt.Errorf("reporting orphaned directories %v: %w", unreported, err)
		}
		s.state.markReported(unreported)
	}
	s.sizeOrphans(ctx) // after the report: measuring may take long
	return listErr
}

// sizeOrphans measures what each orphaned directory not measured yet holds, at the agent's
// measuring rate (tserver_agent_orphaned_directory_bytes), once: an orphan is data someone may
// want back, no volume writes to it, and its size says what removing it would free. One that
// cannot be measured (a file a cleanup left aside, gone meanwhile) has no figure.
func (s *orphanScanner) sizeOrphans(ctx context.Context) {
	prefix := strings.TrimSuffix(path.Clean(s.HostRoot), "/") + "/"
	for _, p := range slices.Sorted(maps.Keys(s.state.seen)) {
		rel, ok := strings.CutPrefix(p, prefix)
		if !ok || s.state.sized[p] || ctx.Err() != nil {
			continue
		}
		used, err := s.measureDir(ctx, rel)
		if err != nil {
			orphanedDirectoryBytes.DeleteLabelValues(p)
			continue
		}
		orphanedDirectoryBytes.WithLabelValues(p).Set(float64(used.Bytes))
		if s.state.sized == nil {
			s.state.sized = map[string]bool{}
		}
		s.state.sized[p] = true
	}
}

// findOrphans lists the directories where volume directories are, and the volumes that may be
// on this node (this node's from the cache, then every volume of the cluster for what those
// leave unused), and returns the host paths of the directories no volume uses. listErr says what
// part of the host root could not be read (what was read is returned all the same); err, why
// nothing could be said. With hold, no directory or volume changes from the agent's own
// provisioning or cleanup meanwhile.
func (s *orphanScanner) findOrphans(ctx context.Context, hold bool) (orphans []string, listErr, err error) {
	if hold {
		s.dirChange.Lock()
		defer s.dirChange.Unlock()
	}
	var removing []string
	s.removing.Range(func(rel, _ any) bool {
		removing = append(removing, rel.(string))
		return true
	})
	rels, listErr := s.Root.VolumeDirs(orphanScanLimit)
	if len(rels) == 0 {
		return nil, listErr, nil
	}
	// The node's own volumes, in the cache, use most directories. Every volume of the cluster is
	// listed from the API server only for the directories they leave unexplained: a volume made
	// by hand, without the labels the cache selects, may use one. A scan of a node that has no
	// orphans reads no list, however many volumes the cluster holds.
	cached := &corev1.PersistentVolumeList{}
	if err := s.List(ctx, cached, client.UnsafeDisableDeepCopy); err != nil { // read, never changed
		return nil, nil, err
	}
	rels = slices.DeleteFunc(s.unusedDirs(rels, cached.Items), func(rel string) bool {
		return slices.Contains(removing, rel)
	})
	if len(rels) == 0 {
		return nil, listErr, nil
	}
	vols, err := s.hostDirectoryVolumes(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, rel := range s.unusedDirs(rels, vols) {
		orphans = append(orphans, path.Join(s.HostRoot, rel))
	}
	return orphans, listErr, nil
}

// unusedDirs returns the directories of rels (below the root) that no volume of vols uses: none
// has its host path at, above or below it, and, for a directory a cleanup moved aside
// (hostfs.Aside), the volume it was moved aside for is gone. Such a volume still there is
// being cleaned up, or its cleanup will be finished, or its directory moved back.
func (a *Agent) unusedDirs(rels []string, vols []corev1.PersistentVolume) []string {
	var unused []string
	for _, rel := range rels {
		if overlapping(vols, path.Join(a.HostRoot, rel), "") != "" {
			continue
		}
		if hostfs.IsAside(rel) && slices.ContainsFunc(vols, func(pv corev1.PersistentVolume) bool {
			return a.relativePath(&pv) != "" && a.asideOf(&pv) == rel
		}) {
			continue
		}
		unused = append(unused, rel)
	}
	return unused
}

// orphanState is what one agent process knows of this node's orphaned directories, by host path.
type orphanState struct {
	// seen are the orphans of the last scan, and those of earlier scans that a scan that could
	// not read everything did not find: they may be there still.
	seen map[string]bool
	// reported are those of seen that an event has named.
	reported map[string]bool
	// sized are those of seen whose size is measured.
	sized map[string]bool
}

// observe takes the orphans a scan found; complete says it read the whole host root. It returns,
// sorted, the orphans no event has named yet and those that are gone (no longer there, or used
// by a volume again): one of those that comes back is reported anew.
func (s *orphanState) observe(found []string, complete bool) (unreported, gone []string) {
	now := make(map[string]bool, len(found))
	for _, p := range found {
		now[p] = true
	}
	for p := range s.seen {
		switch {
		case now[p]:
		case !complete:
			now[p] = true
		default:
			gone = append(gone, p)
			delete(s.reported, p)
			delete(s.sized, p)
		}
	}
	s.seen = now
	for p := range now {
		if !s.reported[p] {
			unreported = append(unreported, p)
		}
	}
	slices.Sort(unreported)
	slices.Sort(gone)
	return unreported, gone
}

// markReported records that an event named paths.
func (s *orphanState) markReported(paths []string) {
	if s.reported == nil {
		s.reported = map[string]bool{}
	}
	for _, p := range paths {
		s.reported[p] = true
	}
}

// reportOrphans writes a Warning event OrphanedDirectory on this node naming paths. It is
// written here, not through the Recorder: the Recorder merges the events of an object with the
// same reason into a series that keeps the first one's note, and each of these names other
// directories.
func (s *orphanScanner) reportOrphans(ctx context.Context, paths []string) error {
	node, err := s.node(ctx)
	if err != nil {
		return err
	}
	controller := reportingController(s.NodeName)
	hostname, _ := os.Hostname()
	_, err = s.Events.Events(metav1.NamespaceDefault).Create(ctx, &eventsv1.Event{
		// Events about cluster-scoped objects live in the default namespace, as the Recorder's.
		// The API server cuts a long name to fit its random suffix.
		ObjectMeta:          metav1.ObjectMeta{GenerateName: node.Name + "-", Namespace: metav1.NamespaceDefault},
		EventTime:           metav1.NewMicroTime(time.Now()),
		ReportingController: controller,
		ReportingInstance:   controller + "-" + hostname,
		Action:              "Scan",
		Reason:              "OrphanedDirectory",
		Regarding:           corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: node.Name, UID: node.UID},
		Note:                orphanNote(s.NodeName, paths, noteLimit),
		Type:                corev1.EventTypeWarning,
	}, metav1.CreateOptions{})
	return err
}

// orphanNote says that node holds the orphaned directories paths, naming as many as fit in limit
// bytes and counting the rest.
func orphanNote(node string, paths []string, limit int) string {
	what := "directories"
	if len(paths) == 1 {
		what = "directory"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Node %s holds %d %s below the host root that no PersistentVolume uses; left as they are: ",
		node, len(paths), what)
	const metric = " (the metric tserver_agent_orphaned_directory names them all)"
	rest := func(named int) string {
		if named == 0 {
			return "too long to name here" + metric
		}
		return fmt.Sprintf(", and %d more", len(paths)-named) + metric
	}
	reserve := max(len(rest(0)), len(rest(1))) // the count has no more digits than len(paths)
	for i, p := range paths {
		if hostfs.IsAside(p) {
			p += " (moved aside by a cleanup that did not finish)"
		}
		if i > 0 {
			p = ", " + p
		}
		if i == len(paths)-1 && b.Len()+len(p) > limit || i < len(paths)-1 && b.Len()+len(p)+reserve > limit {
			return b.String() + rest(i)
		}
		b.WriteString(p)
	}
	return b.String()
}
