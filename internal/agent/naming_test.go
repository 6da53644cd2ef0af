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
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

func TestGroupOfVolume(t *testing.T) {
	a := &Agent{Config: Config{NodeName: "node-1", StorageClassName: tarsv1beta1.StorageClassName}}
	g := group{namespace: "team-a", app: "Tars", server: "TarsLog", volume: "remote-log-dir"}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: a.volumeName(g), Labels: g.labels()}}
	if got, ok := a.groupOfVolume(pv); !ok || got != g {
		t.Errorf("groupOfVolume() = %+v, %v; want %+v", got, ok, g)
	}
	if g.dir() != "team-a/Tars.TarsLog/remote-log-dir" {
		t.Errorf("dir() = %q", g.dir())
	}
	other := &Agent{Config: Config{NodeName: "node-2", StorageClassName: tarsv1beta1.StorageClassName}}
	if _, ok := other.groupOfVolume(pv); ok {
		t.Error("another node's agent read the group of a volume it did not name")
	}
}

func TestOwnershipOf(t *testing.T) {
	for _, tt := range []struct {
		annotations map[string]string
		want        hostfs.Ownership
		wantErr     bool
	}{
		{nil, hostfs.Ownership{UID: 0, GID: 0, Mode: 0o755}, false},
		{map[string]string{tarsv1beta1.AnnotationLocalVolumeUID: "1000"},
			hostfs.Ownership{UID: 1000, GID: 0, Mode: 0o755}, false},
		{map[string]string{tarsv1beta1.AnnotationLocalVolumeMode: ""}, hostfs.Ownership{UID: 0, GID: 0, Mode: 0o755}, false},
		{map[string]string{tarsv1beta1.AnnotationLocalVolumeMode: "0711"},
			hostfs.Ownership{UID: 0, GID: 0, Mode: 0o711}, false},
		{map[string]string{tarsv1beta1.AnnotationLocalVolumeMode: "9"}, hostfs.Ownership{}, true},
	} {
		pvc := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Annotations: tt.annotations}}
		got, err := ownershipOf(pvc)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ownershipOf(%v) = %v, %v; want %v", tt.annotations, got, err, tt.want)
		}
	}
}

func TestSupportsLocalVolumes(t *testing.T) {
	for _, tt := range []struct {
		labels map[string]string
		want   bool
	}{
		{map[string]string{tarsv1beta1.LabelSupportLocalVolume: "true"}, true},
		{map[string]string{tarsv1beta1.LabelSupportLocalVolume: ""}, true},
		{map[string]string{tarsv1beta1.LabelSupportLocalVolume: "false"}, false},
		{nil, false},
	} {
		if got := supportsLocalVolumes(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels}}); got != tt.want {
			t.Errorf("supportsLocalVolumes(%v) = %v", tt.labels, got)
		}
	}
}

func TestWithin(t *testing.T) {
	for _, tt := range []struct {
		p, dir string
		want   bool
	}{
		{"/r/ns/a.b/v", "/r/ns/a.b/v", true},
		{"/r/ns/a.b/v/sub", "/r/ns/a.b/v", true},
		{"/r/ns/a.b/v", "/r/ns", true},
		{"/r/ns/a.b/v", "/", true},
		{"/r/ns/a.b/vx", "/r/ns/a.b/v", false},
		{"/r/ns/a.b", "/r/ns/a.b/v", false},
		{"/r/ns2/a.b/v", "/r/ns", false},
	} {
		if got := within(tt.p, tt.dir); got != tt.want {
			t.Errorf("within(%q, %q) = %v", tt.p, tt.dir, got)
		}
	}
}

func TestMayBeOnThisNode(t *testing.T) {
	r := &VolumeReconciler{Agent: &Agent{Config: Config{Hostname: "host-a"}}}
	affinity := func(terms ...[]string) *corev1.VolumeNodeAffinity {
		sel := &corev1.NodeSelector{}
		for _, hosts := range terms {
			sel.NodeSelectorTerms = append(sel.NodeSelectorTerms, corev1.NodeSelectorTerm{
				MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: hosts,
				}},
			})
		}
		return &corev1.VolumeNodeAffinity{Required: sel}
	}
	for _, tt := range []struct {
		name     string
		labels   map[string]string
		affinity *corev1.VolumeNodeAffinity
		want     bool
	}{
		{"hostname label of this node", map[string]string{corev1.LabelHostname: "host-a"}, nil, true},
		{"hostname label and affinity of another", map[string]string{corev1.LabelHostname: "host-b"},
			affinity([]string{"host-b"}), false},
		{"label of another, affinity to this node: may be here", map[string]string{corev1.LabelHostname: "host-b"},
			affinity([]string{"host-a"}), true},
		{"no label, no affinity: may be anywhere", nil, nil, true},
		{"affinity to this node", nil, affinity([]string{"host-b", "host-a"}), true},
		{"affinity to another", nil, affinity([]string{"host-b"}), false},
		{"one term of two may be this node", nil, affinity([]string{"host-b"}, []string{"host-a"}), true},
	} {
		pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Labels: tt.labels}}
		pv.Spec.NodeAffinity = tt.affinity
		if got := r.mayBeOnThisNode(pv); got != tt.want {
			t.Errorf("%s: mayBeOnThisNode = %v", tt.name, got)
		}
	}
}

func TestClaimChangedIgnoresStatusWrites(t *testing.T) {
	base := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
		Namespace: "default", Name: "remote-log-dir-tars-tarslog-0", ResourceVersion: "1",
		Labels:      map[string]string{tarsv1beta1.LabelLocalVolume: "remote-log-dir"},
		Annotations: map[string]string{tarsv1beta1.AnnotationLocalVolumeMode: "755"},
	}}
	for _, tc := range []struct {
		name   string
		change func(*corev1.PersistentVolumeClaim)
		want   bool
	}{
		{"status phase", func(c *corev1.PersistentVolumeClaim) { c.Status.Phase = corev1.ClaimBound }, false},
		{"resource version only", func(c *corev1.PersistentVolumeClaim) { c.ResourceVersion = "2" }, false},
		{"bound to a volume", func(c *corev1.PersistentVolumeClaim) { c.Spec.VolumeName = "pv" }, true},
		{"mode annotation", func(c *corev1.PersistentVolumeClaim) {
			c.Annotations[tarsv1beta1.AnnotationLocalVolumeMode] = "700"
		}, true},
		{"label", func(c *corev1.PersistentVolumeClaim) { c.Labels[tarsv1beta1.LabelServerApp] = "tars" }, true},
		{"deleted", func(c *corev1.PersistentVolumeClaim) { c.DeletionTimestamp = new(metav1.Now()) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			updated := base.DeepCopy()
			tc.change(updated)
			if got := claimChanged(event.UpdateEvent{ObjectOld: base, ObjectNew: updated}); got != tc.want {
				t.Errorf("claimChanged() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCacheOptionsNarrowClaimsToTheNode(t *testing.T) {
	claims := func(nodeName string) string {
		opts := CacheOptions(nodeName, "host", tarsv1beta1.StorageClassName)
		for obj, by := range opts.ByObject {
			if _, ok := obj.(*corev1.PersistentVolumeClaim); ok {
				return by.Label.String()
			}
		}
		return ""
	}
	if got, want := claims("node-1"), "tars.io/LocalVolume,tars.io/SelectedNode=node-1"; got != want {
		t.Errorf("claims of node-1: %q, want %q", got, want)
	}
	// A node name longer than a label value may be: every node-local claim, filtered in Reconcile.
	long := strings.Repeat("n", 64)
	if got, want := claims(long), "tars.io/LocalVolume"; got != want {
		t.Errorf("claims of a node with a long name: %q, want %q", got, want)
	}
}

// TestWaitingGroup checks the claims index against the volumes: a volume's event finds the
// claims waiting on this node by waitingGroup's key, so the key of a claim that waits here must
// equal that of the volume this agent makes for it, and no other claim may have one.
func TestWaitingGroup(t *testing.T) {
	cfg := Config{NodeName: "node-1", Hostname: "node-1", HostRoot: "/usr/local/app/tars/tlocalvolume",
		StorageClassName: tarsv1beta1.StorageClassName}
	r := &ClaimReconciler{Agent: &Agent{Config: cfg}}
	claim := func(app, server, volume string, edit func(*corev1.PersistentVolumeClaim)) *corev1.PersistentVolumeClaim {
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: volume + "-" + strings.ToLower(app+"-"+server) + "-0",
				Labels: map[string]string{tarsv1beta1.LabelServerApp: app, tarsv1beta1.LabelServerName: server,
					tarsv1beta1.LabelLocalVolume: volume},
				Annotations: map[string]string{"volume.kubernetes.io/selected-node": cfg.NodeName}},
			Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: new(tarsv1beta1.StorageClassName)},
		}
		if edit != nil {
			edit(pvc)
		}
		return pvc
	}
	// Claims that wait here: each has the key of the volume made for it, and only its own.
	waiting := []*corev1.PersistentVolumeClaim{
		claim("tars", "tarslog", "remote-log-dir", nil),
		claim("Tars", "TarsLog", "remote-log-dir", nil), // mixed case, as Tars names servers
		claim("Tars", "TarsLog", "log", nil),
		claim("Tars", "TarsConfig", "remote-log-dir", nil),
		claim("Tars", "TarsLog", tarsv1beta1.DelayBindVolumeName, nil),
	}
	keys := map[string]int{}
	for i, pvc := range waiting {
		got := r.waitingGroup(pvc)
		if len(got) != 1 {
			t.Fatalf("waitingGroup(%s %v) = %v; want one key", pvc.Name, pvc.Labels, got)
		}
		g, ok := r.groupOfVolume(cfg.Volume(pvc, corev1.PersistentVolumeReclaimDelete))
		if !ok || g.key() != got[0] {
			t.Errorf("claim %v has key %q, the volume made for it %q (%v)", pvc.Labels, got[0], g.key(), ok)
		}
		if j, seen := keys[got[0]]; seen {
			t.Errorf("claims %v and %v of different groups share the key %q", waiting[j].Labels, pvc.Labels, got[0])
		}
		keys[got[0]] = i
	}
	// Claims that do not wait for a volume of this node have none.
	for name, pvc := range map[string]*corev1.PersistentVolumeClaim{
		"scheduled on another node": claim("Tars", "TarsLog", "log", func(pvc *corev1.PersistentVolumeClaim) {
			pvc.Annotations["volume.kubernetes.io/selected-node"] = "node-2"
		}),
		"not scheduled yet": claim("Tars", "TarsLog", "log", func(pvc *corev1.PersistentVolumeClaim) {
			pvc.Annotations = nil
		}),
		"bound": claim("Tars", "TarsLog", "log", func(pvc *corev1.PersistentVolumeClaim) {
			pvc.Spec.VolumeName = "pv-1"
		}),
		"being deleted": claim("Tars", "TarsLog", "log", func(pvc *corev1.PersistentVolumeClaim) {
			pvc.DeletionTimestamp = new(metav1.Now())
		}),
		"of another class": claim("Tars", "TarsLog", "log", func(pvc *corev1.PersistentVolumeClaim) {
			pvc.Spec.StorageClassName = new("other")
		}),
		"of no class": claim("Tars", "TarsLog", "log", func(pvc *corev1.PersistentVolumeClaim) {
			pvc.Spec.StorageClassName = nil
		}),
		"without a server label": claim("Tars", "", "log", nil),
		"without a volume label": claim("Tars", "TarsLog", "", nil),
	} {
		if got := r.waitingGroup(pvc); got != nil {
			t.Errorf("claim %s: waitingGroup = %v; want none", name, got)
		}
	}
	if got := r.waitingGroup(&corev1.PersistentVolume{}); got != nil {
		t.Errorf("waitingGroup of a volume = %v; want none", got)
	}
}
