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

package chaos

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

const ns = "chaos-test"

// fixture is a run whose checker reads a fake API server and a temporary host root.
type fixture struct {
	t   *testing.T
	c   client.Client
	run *run
	k   *checker
}

func newFixture(t *testing.T) *fixture {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tarsv1beta1.AddToScheme(scheme)
	c := fake.NewClientBuilder().WithScheme(scheme).Build()
	r := &run{cfg: Config{Cluster: &localcluster.Cluster{StateDir: t.TempDir(), LogDir: t.TempDir()}, Client: c,
		Namespace: ns, GCGrace: time.Second, Log: testLog{t}},
		want: map[string]*tarsv1beta1.TServer{}, userDeleted: map[types.UID]bool{},
		report: &Report{Faults: map[string]int{}, Changes: map[string]int{}, Checks: map[string]int{},
			Violations: map[string]int{}}}
	r.check = newChecker(r)
	r.cfg.Replicas, r.cfg.Volumes = 1, 1
	s0 := r.tserver(0) // with mount data0
	r.want[s0.Name] = s0
	return &fixture{t: t, c: c, run: r, k: r.check}
}

type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) { l.t.Log(string(b)); return len(b), nil }

// bound makes claim name Bound to a volume on node-1 whose directory exists, and returns the
// directory.
func (f *fixture) bound(name string, uid types.UID) string {
	f.t.Helper()
	pvName := "pv-" + name
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid,
			Labels: map[string]string{tarsv1beta1.LabelLocalVolume: "data0", tarsv1beta1.LabelServerName: "s0"}},
		Spec:   corev1.PersistentVolumeClaimSpec{VolumeName: pvName},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
	path := localcluster.ProductionHostRoot + "/" + ns + "/chaos.s0/" + name
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName,
			Labels: map[string]string{tarsv1beta1.LabelServerApp: App, corev1.LabelHostname: "node-1"}},
		Spec: corev1.PersistentVolumeSpec{
			ClaimRef:                      &corev1.ObjectReference{Namespace: ns, Name: name, UID: uid},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			PersistentVolumeSource:        corev1.PersistentVolumeSource{Local: &corev1.LocalVolumeSource{Path: path}},
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound},
	}
	for _, obj := range []client.Object{pvc, pv} {
		if err := f.c.Create(context.Background(), obj); err != nil {
			f.t.Fatal(err)
		}
	}
	dir := f.k.hostDir(pv)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		f.t.Fatal(err)
	}
	return dir
}

func (f *fixture) expectViolations(invariant string, n int) {
	f.t.Helper()
	if got := f.run.report.Violations[invariant]; got != n {
		f.t.Fatalf("%s: %d violations, want %d (%v)", invariant, got, n, f.run.report.Details)
	}
}

// TestCheckerCountsWhatIsLost removes data and directories under bound claims, and removes data
// after a claim is gone: only the first are violations, each counted once.
func TestCheckerCountsWhatIsLost(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	kept := f.bound("kept", "u-kept")
	lost := f.bound("lost", "u-lost")
	emptied := f.bound("emptied", "u-emptied")
	gone := f.bound("gone", "u-gone")
	f.k.sample(ctx, claimlessSlack)
	for _, dir := range []string{kept, lost, emptied, gone} {
		if matches, _ := filepath.Glob(filepath.Join(dir, ".chaos-sentinel-*")); len(matches) != 1 {
			t.Fatalf("%s: sentinels %v", dir, matches)
		}
	}
	f.expectViolations(SentinelKept, 0)

	// The directory of a Bound volume removed; the sentinel of another emptied; a claim deleted
	// with its volume and directory, as the agent does once it is gone.
	if err := os.RemoveAll(lost); err != nil {
		t.Fatal(err)
	}
	matches, _ := filepath.Glob(filepath.Join(emptied, ".chaos-sentinel-*"))
	if err := os.Remove(matches[0]); err != nil {
		t.Fatal(err)
	}
	for _, obj := range []client.Object{
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone"}},
		&corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "pv-gone"}},
	} {
		if err := f.c.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		f.k.sample(ctx, claimlessSlack)
	}
	f.expectViolations(SentinelKept, 2)       // lost's and emptied's, once each
	f.expectViolations(BoundDirectoryKept, 1) // lost's
	f.expectViolations(NoVolumeAfterGrace, 0)
	if f.run.report.Checks[SentinelKept] == 0 || f.run.report.Checks[BoundDirectoryKept] == 0 {
		t.Fatalf("checks not counted: %v", f.run.report.Checks)
	}
}

// TestCheckerCountsClaimsLost deletes claims with their data: by a user, for a mount the server
// lost, and by no one who may (a claim made again empty under the same name): only the last is
// a violation. A directory replaced by a file is gone too.
func TestCheckerCountsClaimsLost(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dirs := map[string]string{}
	for _, name := range []string{"by-user", "mount-removed", "by-no-one", "file"} {
		dirs[name] = f.bound(name, types.UID("u-"+name))
	}
	f.k.sample(ctx, claimlessSlack)

	f.run.userDeleted["u-by-user"] = true
	for _, name := range []string{"by-user", "by-no-one", "mount-removed"} {
		if name == "mount-removed" {
			f.run.want[tarsv1beta1.ResourceName(App, "s0")].Spec.K8S.Mounts = nil
		}
		if err := f.c.Delete(ctx,
			&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(dirs[name]); err != nil {
			t.Fatal(err)
		}
		f.k.sample(ctx, claimlessSlack)
	}
	if err := os.RemoveAll(dirs["file"]); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dirs["file"], nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.k.sample(ctx, claimlessSlack)
	f.expectViolations(ClaimsKept, 1)
	f.expectViolations(BoundDirectoryKept, 1)
	f.expectViolations(SentinelKept, 1) // the file's
}

// TestCheckerCountsVolumesOfNoClaim finds two volumes of one claim, and a volume that outlives
// its claim past the grace.
func TestCheckerCountsVolumesOfNoClaim(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.bound("twice", "u-twice")
	f.bound("orphan", "u-orphan")
	second := &corev1.PersistentVolume{}
	if err := f.c.Get(ctx, client.ObjectKey{Name: "pv-twice"}, second); err != nil {
		t.Fatal(err)
	}
	second.ObjectMeta = metav1.ObjectMeta{Name: "pv-twice-2", Labels: second.Labels}
	if err := f.c.Create(ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Delete(ctx,
		&corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orphan"}}); err != nil {
		t.Fatal(err)
	}
	f.k.sample(ctx, claimlessSlack)
	f.expectViolations(OneVolumePerClaim, 1)
	f.expectViolations(NoVolumeAfterGrace, 0) // within the grace
	f.k.sample(ctx, -time.Hour)               // as if the grace and slack had passed
	f.expectViolations(NoVolumeAfterGrace, 1)
}

// TestServerProblem says what keeps a server from having converged, and nothing once it has.
func TestServerProblem(t *testing.T) {
	f := newFixture(t)
	f.run.cfg.Replicas, f.run.cfg.Volumes = 1, 1
	want := f.run.tserver(0)
	want.Spec.K8S.Replicas = 1
	ts := want.DeepCopy()
	ts.Generation = 2
	ts.Status.ObservedGeneration = 2
	dir := f.bound("data0-"+ts.Name+"-0", "u-0")
	if err := os.Chown(dir, 1000, 0); err != nil {
		t.Skipf("needs root to give the directory uid 1000: %v", err)
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := f.c.Get(context.Background(),
		client.ObjectKey{Namespace: ns, Name: "data0-" + ts.Name + "-0"}, pvc); err != nil {
		t.Fatal(err)
	}
	pvc.Annotations = map[string]string{
		tarsv1beta1.AnnotationLocalVolumeUID:  "1000",
		tarsv1beta1.AnnotationLocalVolumeGID:  "0",
		tarsv1beta1.AnnotationLocalVolumeMode: "755",
	}
	pv := &corev1.PersistentVolume{}
	if err := f.c.Get(context.Background(), client.ObjectKey{Name: pvc.Spec.VolumeName}, pv); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ts.Name + "-0"},
		Spec: corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	claims := map[string]*corev1.PersistentVolumeClaim{pvc.Name: pvc}
	pods := map[string]*corev1.Pod{pod.Name: pod}
	volumes := map[string]*corev1.PersistentVolume{pv.Name: pv}

	if why := f.k.serverProblem(want, ts, claims, pods, volumes); why == "" {
		t.Fatal("a server without conditions has converged")
	}
	for _, c := range []string{tarsv1beta1.ConditionReady, tarsv1beta1.ConditionVolumesBound} {
		ts.Status.Conditions = append(ts.Status.Conditions,
			metav1.Condition{Type: c, Status: metav1.ConditionTrue, ObservedGeneration: 2})
	}
	if why := f.k.serverProblem(want, ts, claims, pods, volumes); why != "" {
		t.Fatalf("a converged server: %s", why)
	}
	for name, spoil := range map[string]func(){
		"mode":   func() { _ = os.Chmod(dir, 0o700) },
		"node":   func() { pod.Spec.NodeName = "node-2" },
		"ready":  func() { pod.Status.Conditions[0].Status = corev1.ConditionFalse },
		"claim":  func() { delete(claims, pvc.Name) },
		"stale":  func() { ts.Status.ObservedGeneration = 1 },
		"extra":  func() { claims["gone-"+ts.Name+"-0"] = pvcOfMount("gone", want.Spec.Server) },
		"absent": func() { ts = nil },
	} {
		saved := ts.DeepCopy()
		savedPod := pod.DeepCopy()
		spoil()
		if why := f.k.serverProblem(want, ts, claims, pods, volumes); why == "" {
			t.Errorf("%s: not converged, yet no problem", name)
		}
		ts, *pod = saved, *savedPod
		pods[pod.Name] = pod
		claims = map[string]*corev1.PersistentVolumeClaim{pvc.Name: pvc}
		_ = os.Chmod(dir, 0o755)
	}
}

func pvcOfMount(mount, server string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
		tarsv1beta1.LabelLocalVolume: mount, tarsv1beta1.LabelServerName: server}}}
}

// TestScanLogs finds a panic logged during the run, not one logged before it.
func TestScanLogs(t *testing.T) {
	f := newFixture(t)
	log := filepath.Join(f.run.cfg.Cluster.LogDir, "agent-node-1.log")
	if err := os.WriteFile(log, []byte("panic: before the run\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.k.markLogs(); err != nil {
		t.Fatal(err)
	}
	f.k.scanLogs()
	f.expectViolations(NoPanic, 0)
	file, err := os.OpenFile(log, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = file.WriteString("all well\npanic: runtime error: index out of range\n")
	_ = file.Close()
	f.k.scanLogs()
	f.expectViolations(NoPanic, 1)
}
