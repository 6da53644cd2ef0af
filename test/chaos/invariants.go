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
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

const (
	// sampleInterval is how often the invariants are checked during a run.
	sampleInterval = time.Second
	// claimlessSlack is how long, beyond the grace, a volume may outlive its claim during a run:
	// its agent may be down (a kill, a back-off) and the API server restarting.
	claimlessSlack = 2 * time.Minute
	// maxDetails bounds the violations a report describes.
	maxDetails = 50
)

// checker checks a run's invariants from the API server and the nodes' directories. A
// violation is only counted once the API server confirms it: a sentinel is lost only if its
// claim still exists after the file was found missing (claims do not come back), a directory
// only if its volume is still Bound to a claim that exists.
type checker struct {
	r *run
	// sentinels are the sentinel files written, by claim; claimless the volumes seen without
	// their claim, since when; reported the violations counted (invariant and object).
	sentinels map[types.UID]sentinel
	claimless map[string]time.Time
	reported  map[string]bool
	// logOffsets are the sizes of the cluster's log files when the run started.
	logOffsets map[string]int64
}

// sentinel is a file written into a bound volume's directory for its claim, a claim of mount
// of server.
type sentinel struct {
	claim         types.NamespacedName
	server, mount string
	file          string
}

func newChecker(r *run) *checker {
	return &checker{r: r, sentinels: map[types.UID]sentinel{}, claimless: map[string]time.Time{},
		reported: map[string]bool{}}
}

// loop samples the invariants until ctx ends.
func (k *checker) loop(ctx context.Context) {
	tick := time.NewTicker(sampleInterval)
	defer tick.Stop()
	for {
		k.sample(ctx, claimlessSlack)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// checked adds n checks of an invariant.
func (k *checker) checked(invariant string, n int) {
	k.r.mu.Lock()
	defer k.r.mu.Unlock()
	k.r.report.Checks[invariant] += n
}

// violation counts a violation of invariant by object, once.
func (k *checker) violation(invariant, object, detail string) {
	k.r.mu.Lock()
	key := invariant + "\x00" + object
	seen := k.reported[key]
	if !seen {
		k.reported[key] = true
		k.r.report.Violations[invariant]++
		if len(k.r.report.Details) < maxDetails {
			k.r.report.Details = append(k.r.report.Details, invariant+": "+detail)
		}
	}
	k.r.mu.Unlock()
	if !seen {
		k.r.logf("VIOLATION %s: %s", invariant, detail)
	}
}

// state is what the API server says of the run's claims and volumes.
type state struct {
	claims  []corev1.PersistentVolumeClaim
	byUID   map[types.UID]*corev1.PersistentVolumeClaim
	volumes map[string]*corev1.PersistentVolume
}

// read lists the run's claims and volumes.
func (k *checker) read(ctx context.Context) (*state, error) {
	var claims corev1.PersistentVolumeClaimList
	if err := k.r.cfg.Client.List(ctx, &claims, client.InNamespace(k.r.cfg.Namespace)); err != nil {
		return nil, err
	}
	var pvs corev1.PersistentVolumeList
	if err := k.r.cfg.Client.List(ctx, &pvs, client.MatchingLabels{tarsv1beta1.LabelServerApp: App}); err != nil {
		return nil, err
	}
	s := &state{claims: claims.Items, byUID: map[types.UID]*corev1.PersistentVolumeClaim{},
		volumes: map[string]*corev1.PersistentVolume{}}
	for i := range s.claims {
		s.byUID[s.claims[i].UID] = &s.claims[i]
	}
	for i := range pvs.Items {
		pv := &pvs.Items[i]
		if ref := pv.Spec.ClaimRef; ref == nil || ref.Namespace == k.r.cfg.Namespace {
			s.volumes[pv.Name] = pv
		}
	}
	return s, nil
}

// hostDir is where the directory of pv lives on this machine ("" for a volume that is not one
// of an agent's).
func (k *checker) hostDir(pv *corev1.PersistentVolume) string {
	node := pv.Labels[corev1.LabelHostname]
	if pv.Spec.Local == nil || node == "" || !strings.HasPrefix(pv.Spec.Local.Path, localcluster.ProductionHostRoot+"/") {
		return ""
	}
	return filepath.Join(k.r.cfg.Cluster.HostRoot(node),
		strings.TrimPrefix(pv.Spec.Local.Path, localcluster.ProductionHostRoot))
}

// sample checks the invariants once, a volume outliving its claim by more than the grace and
// slack being a violation; an API server that does not answer skips the sample.
func (k *checker) sample(ctx context.Context, slack time.Duration) {
	s, err := k.read(ctx)
	if err != nil {
		return
	}
	k.writeSentinels(s)
	k.checkSentinels(ctx)
	k.checkBoundDirectories(ctx, s)
	k.checkOneVolumePerClaim(s)
	k.checkClaimless(s, slack)
}

// writeSentinels writes a sentinel into the directory of every bound data volume that has none.
func (k *checker) writeSentinels(s *state) {
	for _, pvc := range s.claims {
		if _, ok := k.sentinels[pvc.UID]; ok || pvc.Status.Phase != corev1.ClaimBound ||
			pvc.Labels[tarsv1beta1.LabelLocalVolume] == tarsv1beta1.DelayBindVolumeName {
			continue
		}
		pv := s.volumes[pvc.Spec.VolumeName]
		if pv == nil || pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID {
			continue
		}
		dir := k.hostDir(pv)
		if dir == "" {
			continue
		}
		file := filepath.Join(dir, ".chaos-sentinel-"+string(pvc.UID))
		if err := os.WriteFile(file, []byte(pvc.Namespace+"/"+pvc.Name+"\n"), 0o644); err != nil {
			continue // the directory is checked on its own
		}
		k.sentinels[pvc.UID] = sentinel{claim: types.NamespacedName{Namespace: pvc.Namespace, Name: pvc.Name},
			server: pvc.Labels[tarsv1beta1.LabelServerName], mount: pvc.Labels[tarsv1beta1.LabelLocalVolume], file: file}
	}
}

// checkSentinels checks that every sentinel is there while its claim exists, and that a claim
// whose sentinel was written goes only when a user deleted it or its server lost the mount.
func (k *checker) checkSentinels(ctx context.Context) {
	k.checked(SentinelKept, len(k.sentinels))
	k.checked(ClaimsKept, len(k.sentinels))
	for uid, s := range k.sentinels {
		if _, err := os.Stat(s.file); err == nil {
			continue // (a directory replaced by a file fails with another error than not-exist)
		}
		pvc := &corev1.PersistentVolumeClaim{}
		err := k.r.cfg.Client.Get(ctx, s.claim, pvc)
		switch {
		case apierrors.IsNotFound(err) || err == nil && pvc.UID != uid:
			delete(k.sentinels, uid) // the claim is gone, and its data may go
			if !k.r.deletedByUser(uid) && k.r.hasMount(s.server, s.mount) {
				k.violation(ClaimsKept, string(uid), fmt.Sprintf("claim %s (uid %s) of mount %s is gone with its data, "+
					"though no user deleted it and server %s still has the mount", s.claim, uid, s.mount, s.server))
			}
		case err == nil:
			k.violation(SentinelKept, string(uid), fmt.Sprintf("claim %s (uid %s, %s) exists but its sentinel %s is gone",
				s.claim, uid, pvc.Status.Phase, s.file))
		}
	}
}

// checkBoundDirectories checks that the directory of every Bound volume exists.
func (k *checker) checkBoundDirectories(ctx context.Context, s *state) {
	for _, pv := range s.volumes {
		dir := k.hostDir(pv)
		if pv.Status.Phase != corev1.VolumeBound || dir == "" {
			continue
		}
		k.checked(BoundDirectoryKept, 1)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			continue
		}
		now := &corev1.PersistentVolume{}
		if err := k.r.cfg.Client.Get(ctx, client.ObjectKeyFromObject(pv), now); err != nil || now.UID != pv.UID ||
			now.Status.Phase != corev1.VolumeBound || now.Spec.ClaimRef == nil {
			continue
		}
		ref := now.Spec.ClaimRef
		pvc := &corev1.PersistentVolumeClaim{}
		if err := k.r.cfg.Client.Get(ctx, types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}, pvc); err != nil ||
			pvc.UID != ref.UID {
			continue
		}
		k.violation(BoundDirectoryKept, pv.Name,
			fmt.Sprintf("volume %s is Bound to claim %s/%s, but its directory %s is not there",
				pv.Name, ref.Namespace, ref.Name, dir))
	}
}

// checkOneVolumePerClaim checks that no two volumes name one claim.
func (k *checker) checkOneVolumePerClaim(s *state) {
	byClaim := map[types.UID][]string{}
	for _, pv := range s.volumes {
		if ref := pv.Spec.ClaimRef; ref != nil && ref.UID != "" {
			byClaim[ref.UID] = append(byClaim[ref.UID], pv.Name)
		}
	}
	k.checked(OneVolumePerClaim, len(byClaim))
	for uid, names := range byClaim {
		if len(names) > 1 {
			slices.Sort(names)
			k.violation(OneVolumePerClaim, string(uid), fmt.Sprintf("claim uid %s has volumes %v", uid, names))
		}
	}
}

// checkClaimless checks that no volume outlives its claim by more than the grace and slack.
func (k *checker) checkClaimless(s *state, slack time.Duration) {
	now := time.Now()
	for name, pv := range s.volumes {
		k.checked(NoVolumeAfterGrace, 1)
		if ref := pv.Spec.ClaimRef; ref != nil && s.byUID[ref.UID] != nil {
			delete(k.claimless, name)
			continue
		}
		since, ok := k.claimless[name]
		if !ok {
			k.claimless[name] = now
			continue
		}
		if now.Sub(since) > k.r.cfg.GCGrace+slack {
			ref := "none"
			if pv.Spec.ClaimRef != nil {
				ref = pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name
			}
			k.violation(NoVolumeAfterGrace, name, fmt.Sprintf("volume %s (%s, %s, claim %s) has had no claim for %s",
				name, pv.Status.Phase, pv.Spec.PersistentVolumeReclaimPolicy, ref, now.Sub(since).Round(time.Second)))
		}
	}
	for name := range k.claimless {
		if s.volumes[name] == nil {
			delete(k.claimless, name)
		}
	}
}

// final samples the invariants once more, once the workload converged, and checks that every
// volume whose claim is gone goes within the grace and a minute: a violation each that does not.
func (k *checker) final(ctx context.Context) {
	k.sample(ctx, claimlessSlack)
	deadline := time.Now().Add(k.r.cfg.GCGrace + time.Minute)
	for ctx.Err() == nil {
		s, err := k.read(ctx)
		if err != nil {
			time.Sleep(sampleInterval)
			continue
		}
		var left []*corev1.PersistentVolume
		for _, pv := range s.volumes {
			if pv.Spec.ClaimRef == nil || s.byUID[pv.Spec.ClaimRef.UID] == nil {
				left = append(left, pv)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, pv := range left {
				k.violation(NoVolumeAfterGrace, pv.Name,
					fmt.Sprintf("volume %s (%s, %s) has no claim %s after the workload converged",
						pv.Name, pv.Status.Phase, pv.Spec.PersistentVolumeReclaimPolicy, k.r.cfg.GCGrace+time.Minute))
			}
			return
		}
		time.Sleep(sampleInterval)
	}
}

// volumesGone waits up to timeout for every volume of the run's namespace to be gone (after the
// namespace was deleted); each left is a violation.
func (k *checker) volumesGone(ctx context.Context, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	var left map[string]*corev1.PersistentVolume
	for ctx.Err() == nil {
		if s, err := k.read(ctx); err == nil {
			left = s.volumes
			if len(left) == 0 || time.Now().After(deadline) {
				break
			}
		}
		time.Sleep(sampleInterval)
	}
	k.checked(NoVolumeAfterGrace, len(left))
	for name, pv := range left {
		k.violation(NoVolumeAfterGrace, name,
			fmt.Sprintf("volume %s (%s, %s) is still there %s after namespace %s was deleted",
				name, pv.Status.Phase, pv.Spec.PersistentVolumeReclaimPolicy, timeout, k.r.cfg.Namespace))
	}
}

// waitConverged waits up to timeout for every TServer to converge and returns the time from
// start; when they do not, each that did not is a violation, and the time is zero.
func (k *checker) waitConverged(ctx context.Context, start time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	for {
		problems, err := k.problems(ctx)
		if err == nil {
			k.checked(EveryServerConverge, len(k.r.wanted()))
			if len(problems) == 0 {
				return time.Since(start), nil
			}
		}
		if time.Now().After(deadline) {
			if err != nil {
				return 0, fmt.Errorf("reading the TServers: %w", err)
			}
			for name, why := range problems {
				k.violation(EveryServerConverge, name, fmt.Sprintf("TServer %s did not converge within %s: %s (%s)", name,
					timeout, why, k.diagnose(ctx, name)))
			}
			return 0, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(sampleInterval):
		}
	}
}

// diagnose says what the StatefulSet of the TServer name and its pods report, to tell a status
// that is behind from a replica that is not there.
func (k *checker) diagnose(ctx context.Context, name string) string {
	key := client.ObjectKey{Namespace: k.r.cfg.Namespace, Name: name}
	var b strings.Builder
	sts := &appsv1.StatefulSet{}
	if err := k.r.cfg.Client.Get(ctx, key, sts); err != nil {
		fmt.Fprintf(&b, "StatefulSet: %v", err)
	} else {
		st := sts.Status
		fmt.Fprintf(&b, "StatefulSet uid %s generation %d observed %d, replicas %d/%d ready %d updated %d, revisions %s/%s",
			sts.UID, sts.Generation, st.ObservedGeneration, st.Replicas, *sts.Spec.Replicas, st.ReadyReplicas,
			st.UpdatedReplicas, st.CurrentRevision, st.UpdateRevision)
	}
	var pods corev1.PodList
	if err := k.r.cfg.Client.List(ctx, &pods, client.InNamespace(key.Namespace)); err == nil {
		for _, pod := range pods.Items {
			if strings.HasPrefix(pod.Name, name+"-") {
				fmt.Fprintf(&b, "; pod %s %s ready %t on %q, deleting %t, revision %s", pod.Name, pod.Status.Phase,
					podReady(&pod), pod.Spec.NodeName, pod.DeletionTimestamp != nil, pod.Labels[appsv1.ControllerRevisionHashLabelKey])
				for _, c := range pod.Status.Conditions {
					if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
						fmt.Fprintf(&b, ", not scheduled since %s: %s %s", c.LastTransitionTime.Format(time.TimeOnly),
							c.Reason, c.Message)
					}
				}
			}
		}
	}
	var claims corev1.PersistentVolumeClaimList
	if err := k.r.cfg.Client.List(ctx, &claims, client.InNamespace(key.Namespace)); err == nil {
		for _, pvc := range claims.Items {
			if strings.HasSuffix(strings.TrimRight(pvc.Name, "0123456789"), "-"+name+"-") { // <mount>-<name>-<ordinal>
				fmt.Fprintf(&b, "; claim %s %s, deleting %t, volume %q, selected node %q, made %s", pvc.Name,
					pvc.Status.Phase, pvc.DeletionTimestamp != nil, pvc.Spec.VolumeName,
					pvc.Annotations[volumehelpers.AnnSelectedNode], pvc.CreationTimestamp.Format(time.TimeOnly))
			}
		}
	}
	return b.String()
}

// problems says, for each TServer that has not converged, the first thing that is not as it
// should be: its status (observed, Ready, VolumesBound), each replica's pod (Running and Ready
// on its volumes' node), each claim (Bound, with the mount's ownership, its directory owned and
// moded so), no claim of a mount removed.
func (k *checker) problems(ctx context.Context) (map[string]string, error) {
	ns := client.InNamespace(k.r.cfg.Namespace)
	var tss tarsv1beta1.TServerList
	var pods corev1.PodList
	if err := k.r.cfg.Client.List(ctx, &tss, ns); err != nil {
		return nil, err
	}
	if err := k.r.cfg.Client.List(ctx, &pods, ns); err != nil {
		return nil, err
	}
	s, err := k.read(ctx)
	if err != nil {
		return nil, err
	}
	claims := map[string]*corev1.PersistentVolumeClaim{}
	for i := range s.claims {
		claims[s.claims[i].Name] = &s.claims[i]
	}
	podsByName := map[string]*corev1.Pod{}
	for i := range pods.Items {
		podsByName[pods.Items[i].Name] = &pods.Items[i]
	}
	got := map[string]*tarsv1beta1.TServer{}
	for i := range tss.Items {
		got[tss.Items[i].Name] = &tss.Items[i]
	}
	problems := map[string]string{}
	for name, want := range k.r.wanted() {
		if why := k.serverProblem(want, got[name], claims, podsByName, s.volumes); why != "" {
			problems[name] = why
		}
	}
	return problems, nil
}

// serverProblem is the first thing about want that has not converged, or "".
func (k *checker) serverProblem(want, ts *tarsv1beta1.TServer, claims map[string]*corev1.PersistentVolumeClaim,
	pods map[string]*corev1.Pod, volumes map[string]*corev1.PersistentVolume) string {
	if ts == nil {
		return "it does not exist"
	}
	if ts.Status.ObservedGeneration != ts.Generation {
		return fmt.Sprintf("status is of generation %d, not %d", ts.Status.ObservedGeneration, ts.Generation)
	}
	for _, cond := range []string{tarsv1beta1.ConditionReady, tarsv1beta1.ConditionVolumesBound} {
		c := meta.FindStatusCondition(ts.Status.Conditions, cond)
		if c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != ts.Generation {
			return fmt.Sprintf("condition %s is %v", cond, c)
		}
	}
	mounts := map[string]*tarsv1beta1.TLocalVolume{}
	for _, m := range want.Spec.K8S.Mounts {
		if m.Source.TLocalVolume != nil {
			mounts[m.Name] = m.Source.TLocalVolume
		}
	}
	k8s := want.Spec.K8S
	if k8s.HostNetwork || k8s.HostIPC || len(k8s.HostPorts) > 0 {
		mounts[tarsv1beta1.DelayBindVolumeName] = nil
	}
	for ordinal := range int(k8s.Replicas) {
		pod := pods[fmt.Sprintf("%s-%d", want.Name, ordinal)]
		if pod == nil || pod.Status.Phase != corev1.PodRunning || !podReady(pod) {
			return fmt.Sprintf("replica %d is not Running and Ready", ordinal)
		}
		for mount, lv := range mounts {
			name := fmt.Sprintf("%s-%s-%d", mount, want.Name, ordinal)
			pvc := claims[name]
			if pvc == nil || pvc.Status.Phase != corev1.ClaimBound || pvc.DeletionTimestamp != nil {
				return fmt.Sprintf("claim %s is not Bound", name)
			}
			pv := volumes[pvc.Spec.VolumeName]
			if pv == nil {
				return fmt.Sprintf("claim %s has no volume %s of its namespace", name, pvc.Spec.VolumeName)
			}
			if node := pv.Labels[corev1.LabelHostname]; node != pod.Spec.NodeName {
				return fmt.Sprintf("replica %d runs on %s, its volume %s is on %s", ordinal, pod.Spec.NodeName, pv.Name, node)
			}
			if lv == nil {
				continue
			}
			if why := ownershipProblem(pvc, lv, k.hostDir(pv)); why != "" {
				return fmt.Sprintf("claim %s: %s", name, why)
			}
		}
	}
	for _, pvc := range claims {
		mount := pvc.Labels[tarsv1beta1.LabelLocalVolume]
		if _, ok := mounts[mount]; !ok && pvc.Labels[tarsv1beta1.LabelServerName] == want.Spec.Server {
			return fmt.Sprintf("claim %s of mount %s, which the server no longer has, is still there", pvc.Name, mount)
		}
	}
	return ""
}

// ownershipProblem says how the claim's annotations or its directory differ from the mount's
// uid, gid and mode, or "".
func ownershipProblem(pvc *corev1.PersistentVolumeClaim, lv *tarsv1beta1.TLocalVolume, dir string) string {
	want := [3]string{lv.UID, lv.GID, lv.Mode}
	a := pvc.Annotations
	if got := [3]string{a[tarsv1beta1.AnnotationLocalVolumeUID], a[tarsv1beta1.AnnotationLocalVolumeGID],
		a[tarsv1beta1.AnnotationLocalVolumeMode]}; got != want {
		return fmt.Sprintf("annotations say %v, the mount %v", got, want)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	got := [3]string{strconv.FormatUint(uint64(st.Uid), 10), strconv.FormatUint(uint64(st.Gid), 10),
		strconv.FormatUint(uint64(fi.Mode().Perm()), 8)}
	if got != want {
		return fmt.Sprintf("directory %s is %v, the mount says %v", dir, got, want)
	}
	return ""
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// panicMarks are what a panic leaves in a Go program's log: the runtime's own, and
// apimachinery's HandleCrash for one recovered.
var panicMarks = []string{"panic:", "fatal error:", "Observed a panic"}

// markLogs records how far the cluster's logs go, so that scanLogs reads only the run's part.
func (k *checker) markLogs() error {
	k.logOffsets = map[string]int64{}
	files, err := filepath.Glob(filepath.Join(k.r.cfg.Cluster.LogDir, "*.log"))
	if err != nil {
		return err
	}
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			k.logOffsets[f] = fi.Size()
		}
	}
	return nil
}

// scanLogs looks for panics in what every component logged during the run.
func (k *checker) scanLogs() {
	files, _ := filepath.Glob(filepath.Join(k.r.cfg.Cluster.LogDir, "*.log"))
	k.checked(NoPanic, len(files))
	for _, file := range files {
		f, err := os.Open(file)
		if err != nil {
			continue
		}
		if _, err := f.Seek(k.logOffsets[file], io.SeekStart); err == nil {
			lines := bufio.NewScanner(f)
			lines.Buffer(make([]byte, 0, 64*1024), 1024*1024)
			for n := 1; lines.Scan(); n++ {
				line := lines.Text()
				if slices.ContainsFunc(panicMarks, func(m string) bool { return strings.Contains(line, m) }) {
					k.violation(NoPanic, file, fmt.Sprintf("%s (line %d of the run's part): %.200s", file, n, line))
				}
			}
		}
		_ = f.Close()
	}
}
