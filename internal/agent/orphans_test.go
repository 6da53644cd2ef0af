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
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

func TestOrphanState(t *testing.T) {
	var s orphanState
	step := func(found []string, complete bool, wantUnreported, wantGone []string) {
		t.Helper()
		unreported, gone := s.observe(found, complete)
		if diff := cmp.Diff(wantUnreported, unreported); diff != "" {
			t.Errorf("observe(%q, %v) unreported (-want +got):\n%s", found, complete, diff)
		}
		if diff := cmp.Diff(wantGone, gone); diff != "" {
			t.Errorf("observe(%q, %v) gone (-want +got):\n%s", found, complete, diff)
		}
		s.markReported(unreported)
	}
	step([]string{"/r/b", "/r/a"}, true, []string{"/r/a", "/r/b"}, nil)
	step([]string{"/r/a", "/r/b"}, true, nil, nil) // reported once
	step([]string{"/r/a"}, false, nil, nil)        // a scan that read part: /r/b may be there still
	if !s.seen["/r/b"] {
		t.Error("an incomplete scan forgot an orphan it did not find")
	}
	step([]string{"/r/a"}, true, nil, []string{"/r/b"})
	step([]string{"/r/a", "/r/b"}, true, []string{"/r/b"}, nil) // back: reported again
	step(nil, true, nil, []string{"/r/a", "/r/b"})

	// An event that failed to be written leaves its orphans unreported for the next scan.
	if unreported, _ := s.observe([]string{"/r/c"}, true); !slices.Equal(unreported, []string{"/r/c"}) {
		t.Fatalf("unreported = %q", unreported)
	}
	if unreported, _ := s.observe([]string{"/r/c"}, true); !slices.Equal(unreported, []string{"/r/c"}) {
		t.Errorf("an orphan no event named was not offered again: %q", unreported)
	}
}

func TestOrphanNote(t *testing.T) {
	one := orphanNote("node-1", []string{"/h/ns/a.b/v"}, noteLimit)
	if want := "Node node-1 holds 1 directory below the host root that no PersistentVolume uses; " +
		"left as they are: /h/ns/a.b/v"; one != want {
		t.Errorf("note = %q, want %q", one, want)
	}
	aside := orphanNote("node-1", []string{"/h/ns/a.b/v", "/h/ns/a.b/v.deleting-123"}, noteLimit)
	if !strings.HasSuffix(aside, "/h/ns/a.b/v, /h/ns/a.b/v.deleting-123 (moved aside by a cleanup that did not finish)") {
		t.Errorf("note = %q", aside)
	}

	many := make([]string, 0, 100)
	for i := range 100 {
		many = append(many, fmt.Sprintf("/usr/local/app/tars/host-mount/team-%03d/tars.tarslog/remote-log-dir", i))
	}
	for _, n := range []int{1, 2, 15, 16, 17, 100} {
		paths := many[:n]
		note := orphanNote(strings.Repeat("n", 253), paths, noteLimit)
		if len(note) > noteLimit {
			t.Errorf("%d paths: note of %d bytes", n, len(note))
		}
		named := 0
		for _, p := range paths {
			if strings.Contains(note, p) {
				named++
			}
		}
		if named == n {
			continue
		}
		if named == 0 ||
			!strings.Contains(note, fmt.Sprintf(", and %d more (the metric tserver_agent_orphaned_directory", n-named)) {
			t.Errorf("%d paths, %d named: note %q does not count the rest", n, named, note)
		}
	}
	if note := orphanNote("node-1", many[:1], 100); !strings.HasSuffix(note, "too long to name here"+
		" (the metric tserver_agent_orphaned_directory names them all)") {
		t.Errorf("a path that does not fit: note %q", note)
	}
}

func TestUnusedDirs(t *testing.T) {
	a := &Agent{Config: Config{HostRoot: "/h"}}
	local := func(name, uid, p string) corev1.PersistentVolume {
		return corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)},
			Spec: corev1.PersistentVolumeSpec{PersistentVolumeSource: corev1.PersistentVolumeSource{
				Local: &corev1.LocalVolumeSource{Path: p}}}}
	}
	hostPath := local("by-hand", "3", "")
	hostPath.Spec.Local = nil
	hostPath.Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/h/ns/hand.made/"}
	vols := []corev1.PersistentVolume{
		local("exact", "1", "/h/ns/a.b/used"),
		local("below", "2", "/h/ns/a.b/parent/sub"),
		hostPath,
		local("being-cleaned", "4", "/h/ns/a.b/cleaning"),
		local("elsewhere", "5", "/other/ns/a.b/orphan"),
	}
	rels := []string{
		"ns/a.b/used", "ns/a.b/parent", "ns/hand.made/x", "ns/hand.made/y",
		"ns/a.b/cleaning.deleting-4", // a cleanup under way, or to be finished: its volume is there
		"ns/a.b/gone.deleting-9",     // its volume is gone
		"ns/a.b/cleaning.deleting-5", // aside for another volume's uid
		"ns/a.b/orphan", "ns/a.b/usedx",
	}
	want := []string{"ns/a.b/gone.deleting-9", "ns/a.b/cleaning.deleting-5", "ns/a.b/orphan", "ns/a.b/usedx"}
	if diff := cmp.Diff(want, a.unusedDirs(rels, vols)); diff != "" {
		t.Errorf("unusedDirs (-want +got):\n%s", diff)
	}
	root := local("root", "6", "")
	root.Spec.Local = nil
	root.Spec.HostPath = &corev1.HostPathVolumeSource{Path: "/"}
	if got := a.unusedDirs(rels, []corev1.PersistentVolume{root}); len(got) != 0 {
		t.Errorf("with a volume of / every directory is used; unusedDirs = %q", got)
	}
}

// recordedEvents keeps the events an agent writes.
type recordedEvents struct {
	eventsv1client.EventInterface
	created []*eventsv1.Event
}

func (r *recordedEvents) Events(string) eventsv1client.EventInterface { return r }

func (r *recordedEvents) Create(_ context.Context, e *eventsv1.Event, _ metav1.CreateOptions) (*eventsv1.Event, error) {
	r.created = append(r.created, e)
	return e, nil
}

// newTestScanner is the orphan scanner of node-1, whose host root /h is a new directory holding
// dirs, with a fake API server holding the node and objs; and the events it writes.
func newTestScanner(t *testing.T, dirs []string, objs ...client.Object) (*orphanScanner, string, *recordedEvents) {
	t.Helper()
	dir := t.TempDir()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	root, err := hostfs.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1", UID: "node-uid"}}
	c := fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(append(objs, node)...).Build()
	events := &recordedEvents{}
	return &orphanScanner{Agent: &Agent{
		Config: Config{NodeName: "node-1", Hostname: "host-1", HostRoot: "/h", Root: root},
		Client: c, APIReader: c, Events: events, measureRate: newMeasureRate(0),
	}}, dir, events
}

// localVolume is a volume made by hand for the host directory p.
func localVolume(name, p string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{
		PersistentVolumeSource: corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: p}}}}
}

func TestScanReportsOnceAndCounts(t *testing.T) {
	s, dir, events := newTestScanner(t, []string{"ns/a.b/orphan", "ns/a.b/used"}, localVolume("used", "/h/ns/a.b/used"))
	scan := func(wantOrphans float64) {
		t.Helper()
		if err := s.scan(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(orphanedDirectories); got != wantOrphans {
			t.Errorf("tserver_agent_orphaned_directories = %v, want %v", got, wantOrphans)
		}
	}
	series := func() []string {
		var paths []string
		for p := range s.state.seen {
			if testutil.ToFloat64(orphanedDirectory.WithLabelValues(p)) == 1 {
				paths = append(paths, p)
			}
		}
		slices.Sort(paths)
		return paths
	}

	scan(1)
	scan(1)
	if len(events.created) != 1 {
		t.Fatalf("%d events after two scans, want 1", len(events.created))
	}
	e := events.created[0]
	if e.Reason != "OrphanedDirectory" || e.Type != corev1.EventTypeWarning || e.Namespace != "default" ||
		e.Regarding != (corev1.ObjectReference{APIVersion: "v1", Kind: "Node", Name: "node-1", UID: "node-uid"}) ||
		!strings.HasSuffix(e.Note, ": /h/ns/a.b/orphan") || e.ReportingController != "tserver-agent-node-1" {
		t.Errorf("event %+v", e)
	}
	if !slices.Equal(series(), []string{"/h/ns/a.b/orphan"}) {
		t.Errorf("tserver_agent_orphaned_directory series %q", series())
	}

	if err := os.Mkdir(filepath.Join(dir, "ns/a.b/new"), 0o755); err != nil {
		t.Fatal(err)
	}
	scan(2)
	if len(events.created) != 2 || !strings.HasSuffix(events.created[1].Note, "1 directory below the host root that no "+
		"PersistentVolume uses; left as they are: /h/ns/a.b/new") {
		t.Errorf("after a new orphan, events %d, last note %q", len(events.created),
			events.created[len(events.created)-1].Note)
	}

	if err := os.Remove(filepath.Join(dir, "ns/a.b/orphan")); err != nil {
		t.Fatal(err)
	}
	scan(1)
	if n := testutil.CollectAndCount(orphanedDirectory); n != 1 {
		t.Errorf("%d tserver_agent_orphaned_directory series after an orphan went away, want 1", n)
	}
	if _, err := os.Stat(filepath.Join(dir, "ns/a.b/new")); err != nil {
		t.Errorf("the orphan was touched: %v", err)
	}
}

// A scan reads the node's own volumes from the cache, and every volume of the cluster from the
// API server only for the directories those leave unused: there, a volume made by hand without
// the labels the cache selects may use one, and so keeps it from being reported.
func TestScanListsTheClusterOnlyForUnexplainedDirectories(t *testing.T) {
	own := localVolume("own", "/h/ns/a.b/own")
	byHand := localVolume("by-hand", "/h/ns/a.b/by-hand")
	s, _, _ := newTestScanner(t, []string{"ns/a.b/own", "ns/a.b/by-hand", "ns/a.b/orphan"}, own, byHand)
	s.Client = fake.NewClientBuilder().WithScheme(NewScheme()).WithObjects(own.DeepCopy()).Build() // the cache
	lists := 0
	s.APIReader = interceptor.NewClient(s.APIReader.(client.WithWatch), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			lists++
			return c.List(ctx, list, opts...)
		},
	})
	orphans := func() []string {
		t.Helper()
		found, listErr, err := s.findOrphans(t.Context(), false)
		if err != nil || listErr != nil {
			t.Fatal(err, listErr)
		}
		return found
	}

	if got := orphans(); !slices.Equal(got, []string{"/h/ns/a.b/orphan"}) || lists != 1 {
		t.Errorf("orphans %q after %d lists of every volume, want only /h/ns/a.b/orphan after 1", got, lists)
	}
	// A cleanup removing that directory: not an orphan.
	s.removing.Store("ns/a.b/orphan", true)
	if got := orphans(); len(got) != 0 {
		t.Errorf("orphans %q: a directory being removed was reported", got)
	}
	s.removing.Delete("ns/a.b/orphan")
	lists = 0
	for _, rel := range []string{"ns/a.b/by-hand", "ns/a.b/orphan"} {
		if err := s.Root.RemoveAll(rel); err != nil {
			t.Fatal(err)
		}
	}
	if got := orphans(); len(got) != 0 || lists != 0 {
		t.Errorf("orphans %q after %d lists, want none after no list: the cache explains every directory",
			got, lists)
	}
}

func TestScanSeesNoDirectoryBeforeItsVolume(t *testing.T) {
	s, _, events := newTestScanner(t, []string{"ns/a.b/new"})

	// A provisioning has made the directory, and is making its volume.
	s.dirChange.RLock()
	done := make(chan error, 1)
	go func() { done <- s.scan(context.Background()) }()
	// Until the scan finishes, or waits for the provisioning (a writer waiting fails TryRLock).
	finished := false
	for !finished {
		select {
		case err := <-done:
			finished = true
			done <- err
		default:
			if !s.dirChange.TryRLock() {
				finished = true
				continue
			}
			s.dirChange.RUnlock()
			runtime.Gosched()
		}
	}
	if err := s.Create(context.Background(), localVolume("new", "/h/ns/a.b/new")); err != nil {
		t.Fatal(err)
	}
	s.dirChange.RUnlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, e := range events.created {
		t.Errorf("the scan reported the directory of a volume being made: %q", e.Note)
	}
}

// The API server refuses an event whose reporting controller is no qualified name: an agent of a
// node with a long name (cloud providers' are often long) would write no event at all.
func TestReportingControllerIsAQualifiedName(t *testing.T) {
	for _, node := range []string{"node-1", strings.Repeat("n", 49), strings.Repeat("n", 50),
		"ip-10-0-0-1.eu-central-1.compute.internal.example-cluster-with-a-long-name"} {
		if errs := validation.IsQualifiedName(reportingController(node)); len(errs) > 0 {
			t.Errorf("reportingController(%q) = %q: %v", node, reportingController(node), errs)
		}
	}
	if got := reportingController("node-1"); got != "tserver-agent-node-1" {
		t.Errorf("reportingController(node-1) = %q, want tserver-agent-node-1", got)
	}
}
