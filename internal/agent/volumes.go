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
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

// VolumeReconciler cleans up this node's volumes: a released one with reclaim policy Delete
// loses its directory and then itself; an unbound one that no claim waits for is deleted after
// the grace period. A bound volume, and its directory, are never touched.
type VolumeReconciler struct {
	*Agent
}

// Reconcile handles one volume of this node.
func (r *VolumeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	pv := &corev1.PersistentVolume{}
	if err := r.Get(ctx, req.NamespacedName, pv); err != nil {
		if apierrors.IsNotFound(err) {
			r.moveFailed.Delete(req.Name)
			r.refused.Delete(req.Name) // a volume of that name made anew is judged anew
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if pv.Status.Phase != corev1.VolumeReleased {
		// A failed or refused cleanup is of a release only: released again, it is judged anew.
		r.moveFailed.Delete(pv.Name)
		r.refused.Delete(pv.Name)
	}
	if !r.isOurVolume(pv) || !pv.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil
	}
	switch pv.Status.Phase {
	case corev1.VolumeReleased:
		return r.reclaim(ctx, pv)
	case corev1.VolumeAvailable:
		return r.collect(ctx, pv)
	case corev1.VolumeBound:
		return r.watchClaim(ctx, pv)
	}
	return ctrl.Result{}, nil
}

// reclaim removes the directory of a released volume whose reclaim policy is Delete, then the
// volume. With Retain, nothing is touched: the data is the administrator's to keep. The phase
// alone proves nothing (anyone allowed to write a volume's status can set it): the directory goes
// only once cleanupRefusal, reading the API server, finds no reason to keep it, and retire finds
// it at its path (or moved aside by a cleanup a restart cut short) and used by no other volume.
//
// Other released volumes of this node waiting for their cleanup go along (at most
// maxCleanupBatch in all), so that deleting a fleet does not list every volume of the cluster
// once per volume. Only this volume's refusal is reported here (another's is left to its own
// reconcile); a step of the cleanup that fails is counted and reported on its volume, whichever
// of the batch it is, where it fails (retire, moveAside).
func (r *VolumeReconciler) reclaim(ctx context.Context, pv *corev1.PersistentVolume) (ctrl.Result, error) {
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		return ctrl.Result{}, nil
	}
	fresh, err := r.stillAsCached(ctx, pv)
	if err != nil {
		return ctrl.Result{}, r.cleanupErred(ctx, pv, err)
	}
	if fresh == nil {
		return ctrl.Result{}, nil
	}
	why, err := r.cleanupRefusal(ctx, fresh)
	if why == "" && err == nil {
		why, err = r.diskInDoubt(ctx, pv.Name)
	}
	if err != nil {
		return ctrl.Result{}, r.cleanupErred(ctx, fresh, err)
	}
	if why != "" {
		return r.refuse(ctx, fresh, why), nil
	}
	batch := []*corev1.PersistentVolume{fresh}
	for _, other := range r.releasedAlongside(ctx, pv) {
		if why, err := r.cleanupRefusal(ctx, other); why == "" && err == nil { // else: its own reconcile
			batch = append(batch, other)
		}
	}
	outcomes := r.retire(ctx, batch)
	for _, o := range outcomes {
		if o.deleted {
			r.purge(ctx, o.pv)
		}
	}
	lead := outcomes[0]
	if lead.why != "" {
		return r.refuse(ctx, lead.pv, lead.why), nil
	}
	if lead.err != nil {
		r.wakeGroup(ctx, lead.pv) // a failure stored anew, as a refusal, changes no object
	}
	return ctrl.Result{}, lead.err
}

// cleanupErred records that the cleanup of released volume pv failed with err before it moved
// anything (reading the API server or the node's directories), as a failure to move or delete
// is recorded: once the cleanups have kept failing for the grace period, the claims of its group
// waiting on this node are handed back, saying why, rather than wait in silence. It is counted and
// reported on the volume as those are (checkFailed). It returns err.
func (r *VolumeReconciler) cleanupErred(ctx context.Context, pv *corev1.PersistentVolume, err error) error {
	r.checkFailed(ctx, pv, err)
	r.settle([]outcome{{pv: pv, err: err}})
	r.wakeGroup(ctx, pv)
	return err
}

// checkFailed counts and reports that the cleanup of released volume pv could not check that its
// directory may go (reading the API server or the node's directories) with err, unless the
// agent is stopping, which cut the check short. Each step of a cleanup that fails is reported
// under an action of its own (Check, MoveAside, Delete, MoveBack, RemoveDirectory): events of the
// same reason and action are one series that keeps its first note, and a failed delete must not
// read as a failed check.
func (r *VolumeReconciler) checkFailed(ctx context.Context, pv *corev1.PersistentVolume, err error) {
	if ctx.Err() != nil {
		return
	}
	r.stepFailed(pv, "Check", "Node %s cannot check yet that directory %s may be removed: %v",
		r.NodeName, localPath(pv), err)
}

// stepFailed counts a failed step of the cleanup of pv and reports it in a CleanupFailed event
// under action, the step's name.
func (r *VolumeReconciler) stepFailed(pv *corev1.PersistentVolume, action, note string, args ...any) {
	agentErrors.WithLabelValues(reasonCleanup).Inc()
	r.Recorder.Eventf(pv, nil, corev1.EventTypeWarning, "CleanupFailed", action, note, args...)
}

// refuse records, reports and counts why the directory of released volume pv is kept, has the
// claims of its group waiting on this node look again (handed back, they say why), and says when
// to look again: nothing that would change the verdict need be a change of this volume.
func (r *VolumeReconciler) refuse(ctx context.Context, pv *corev1.PersistentVolume, why string) ctrl.Result {
	r.refused.Store(pv.Name, why)
	r.moveFailed.Delete(pv.Name) // the verdict, not an earlier failure, is what its claims hear
	r.wakeGroup(ctx, pv)
	cleanupsRefused.Inc()
	logf.FromContext(ctx).Info("Refused to remove the directory of a released PersistentVolume", "pv", pv.Name,
		"path", localPath(pv), "reason", why)
	r.Recorder.Eventf(pv, nil, corev1.EventTypeWarning, "CleanupRefused", "Delete",
		"Node %s keeps directory %s and volume %s: %s", r.NodeName, localPath(pv), pv.Name, why)
	return ctrl.Result{RequeueAfter: r.GCGracePeriod}
}

// wakeGroup has the claims of released volume pv's group that wait on this node look again, once
// why its cleanup was refused or failed is stored: nothing else brings them back, and they are
// then handed back to the scheduler, saying why. It is sent at every attempt: a claim whose
// hand-back met a conflict is brought back by the next.
func (a *Agent) wakeGroup(ctx context.Context, pv *corev1.PersistentVolume) {
	if a.refusalStored == nil { // no claim controller
		return
	}
	select {
	case a.refusalStored <- event.GenericEvent{Object: pv}:
	case <-ctx.Done():
	}
}

// maxCleanupBatch is how many released volumes one cleanup takes up at most.
const maxCleanupBatch = 16

// stillAsCached reads pv from the API server, and returns it if it is still the cache's copy:
// nil if it is gone or changed (its update brings the volume back).
func (r *VolumeReconciler) stillAsCached(ctx context.Context, pv *corev1.PersistentVolume) (
	*corev1.PersistentVolume, error) {
	// The cache may lag: an administrator may just have cleared the claim to reuse the volume.
	// Only the directory of a volume that is still this released one goes.
	fresh := &corev1.PersistentVolume{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(pv), fresh); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if fresh.ResourceVersion != pv.ResourceVersion {
		return nil, nil
	}
	return fresh, nil
}

// releasedAlongside returns other released volumes of this node, of reclaim policy Delete and
// whose cleanup was not refused before, as read afresh from the API server and unchanged since
// the cache's copy: those a cleanup of pv takes along.
func (r *VolumeReconciler) releasedAlongside(ctx context.Context,
	pv *corev1.PersistentVolume) []*corev1.PersistentVolume {
	list := &corev1.PersistentVolumeList{}
	if err := r.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil { // read, never changed
		return nil
	}
	var batch []*corev1.PersistentVolume
	for i := range list.Items {
		other := &list.Items[i]
		if len(batch) == maxCleanupBatch-1 {
			break
		}
		if other.Name == pv.Name || other.Status.Phase != corev1.VolumeReleased || !other.DeletionTimestamp.IsZero() ||
			other.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete || !r.isOurVolume(other) {
			continue
		}
		if _, refused := r.refused.Load(other.Name); refused {
			continue // its own reconcile comes back to it
		}
		if _, failed := r.moveFailed.Load(other.Name); failed {
			continue
		}
		if fresh, err := r.stillAsCached(ctx, other); fresh != nil && err == nil {
			batch = append(batch, fresh)
		}
	}
	return batch
}

// outcome is what retire did with one volume of its batch: deleted it (its directory, moved
// aside, is then purge's to remove), found why it must be kept, failed, or left it (a volume
// that changed meanwhile: its update brings it back).
type outcome struct {
	pv      *corev1.PersistentVolume
	deleted bool
	why     string
	err     error
}

// retire moves the directories of released volumes aside and deletes the volumes, with
// preconditions, when no other volume that may be on this node uses their directories: purge
// then removes them. Every volume is listed twice for the whole batch: before the moves, so that
// a directory another volume uses is never moved (a pod of that volume may be starting on it),
// and after every move, so that a volume made before a directory left its path is always seen
// (one made since found nothing there); a directory the second list finds used goes back. Each
// volume is read again, unchanged since it was checked, before its directory moves. To the
// orphan scan, moving aside and deleting are one step.
func (r *VolumeReconciler) retire(ctx context.Context, batch []*corev1.PersistentVolume) []outcome {
	outcomes := make([]outcome, len(batch))
	for i, pv := range batch {
		outcomes[i].pv = pv
	}
	// used says whether a volume of vols uses the directory of o's volume, and records in o which.
	used := func(o *outcome, vols []corev1.PersistentVolume) bool {
		if other := overlapping(vols, path.Clean(localPath(o.pv)), o.pv.UID); other != "" {
			o.why = fmt.Sprintf("volume %s uses the same directory, or one above or below it", other)
		}
		return o.why != ""
	}
	vols, err := r.hostDirectoryVolumes(ctx)
	if err != nil {
		for i := range outcomes {
			outcomes[i].err = err
			r.checkFailed(ctx, outcomes[i].pv, err)
		}
		return r.settle(outcomes)
	}
	r.dirChange.RLock()
	defer r.dirChange.RUnlock()
	var moved []*outcome
	for i := range outcomes {
		o := &outcomes[i]
		if used(o, vols) {
			// A cleanup a restart cut short may have left the directory aside: it is the other
			// volume's now. One that cannot go back (its path taken meanwhile) is named.
			if aside := r.asideOf(o.pv); !r.restoreAside(ctx, o.pv) {
				if _, err := r.Root.Ownership(aside); err == nil {
					o.why += fmt.Sprintf("; a cleanup cut short left its data in %s, which cannot go back to its path",
						path.Join(r.HostRoot, aside))
				}
			}
			continue
		}
		// Checking took round trips: only a volume still exactly as checked loses its directory.
		if fresh, err := r.stillAsCached(ctx, o.pv); fresh == nil {
			if o.err = err; err != nil {
				r.checkFailed(ctx, o.pv, err)
			}
			continue
		}
		if o.why, o.err = r.moveAside(o.pv); o.why == "" && o.err == nil {
			moved = append(moved, o)
		}
	}
	if len(moved) > 0 {
		vols, err = r.hostDirectoryVolumes(ctx)
	}
	for _, o := range moved {
		switch {
		case err != nil:
			o.err = err
			r.checkFailed(ctx, o.pv, err)
		case !used(o, vols):
			// Forgotten only now: a claim of the group that finds no refusal waits for the delete
			// to bring it back, and a refusal stored anew would not.
			r.refused.Delete(o.pv.Name)
			if o.deleted, o.err = r.deleteReleased(ctx, o.pv); o.err != nil && ctx.Err() == nil {
				r.stepFailed(o.pv, "Delete", "Node %s cannot delete volume %s, and keeps its directory %s: %v",
					r.NodeName, o.pv.Name, localPath(o.pv), o.err)
			}
		}
		if !o.deleted {
			r.moveBack(ctx, o.pv)
		}
	}
	return r.settle(outcomes)
}

// cleanupFailure is how the last cleanup of a released volume failed, and since when its
// cleanups have been failing.
type cleanupFailure struct {
	err   string
	since time.Time
}

// settle records which volumes of outcomes failed, how, and since when (another volume's cleanup
// does not take them along until their own reconcile succeeds; once they have failed for the
// grace period, the claims of their group waiting on this node are handed back, saying so), and
// returns outcomes.
func (r *VolumeReconciler) settle(outcomes []outcome) []outcome {
	for _, o := range outcomes {
		if o.err != nil {
			failure := cleanupFailure{err: o.err.Error(), since: time.Now()}
			if earlier, ok := r.moveFailed.Load(o.pv.Name); ok {
				failure.since = earlier.(cleanupFailure).since
			}
			r.moveFailed.Store(o.pv.Name, failure)
		} else {
			r.moveFailed.Delete(o.pv.Name)
		}
	}
	return outcomes
}

// moveAside moves the directory of released volume pv aside (asideOf), and says why it must be
// kept instead, or what failed. A directory found aside already was moved there by a cleanup a
// restart cut short. One neither at its path nor aside is missing: a data disk that is not
// mounted hides it, and deleting the volume would leave its data there, unknown, to a later claim
// of its group; it is kept until the directory is back (unless it is a delay-bind volume's, which
// holds nothing), or an administrator deletes the volume.
func (r *VolumeReconciler) moveAside(pv *corev1.PersistentVolume) (string, error) {
	rel, aside := r.relativePath(pv), r.asideOf(pv)
	r.removing.Store(aside, true)
	gone, err := r.Root.Missing([]string{rel})
	if err == nil && len(gone) == 1 {
		// Only a directory found at the aside place is one: any doubt is no proof.
		_, err = r.Root.Ownership(aside)
		switch {
		case err == nil:
			return "", nil
		case !errors.Is(err, fs.ErrNotExist):
		case pv.Labels[tarsv1beta1.LabelLocalVolume] == tarsv1beta1.DelayBindVolumeName:
			return "", nil
		default:
			r.removing.Delete(aside)
			return fmt.Sprintf("its directory is missing (a data disk not mounted?): the volume goes once it is back; "+
				"delete the volume to give up its data (kubectl delete pv %s)", pv.Name), nil
		}
	}
	if err == nil {
		err = r.Root.Rename(rel, aside)
	}
	if err == nil {
		return "", nil
	}
	r.removing.Delete(aside)
	r.stepFailed(pv, "MoveAside", "Node %s cannot move %s aside to remove it: %v", r.NodeName, localPath(pv), err)
	return "", err
}

// moveBack moves the directory of volume pv back from aside, where it is no longer being removed.
func (r *VolumeReconciler) moveBack(ctx context.Context, pv *corev1.PersistentVolume) {
	rel, aside := r.relativePath(pv), r.asideOf(pv)
	defer r.removing.Delete(aside)
	err := r.Root.Rename(aside, rel)
	if errors.Is(err, fs.ErrExist) {
		if gone, mErr := r.Root.Missing([]string{aside}); mErr == nil && len(gone) == 1 {
			return // moved back already
		}
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		logf.FromContext(ctx).Error(err, "Failed to move a directory back from aside", "pv", pv.Name, "aside", aside)
		r.stepFailed(pv, "MoveBack", "Node %s cannot move directory %s back from %s, where its cleanup moved it: %v",
			r.NodeName, localPath(pv), path.Join(r.HostRoot, aside), err)
	}
}

// deleteReleased deletes released volume pv with preconditions, and says whether it did: a
// volume that changed since it was read (an administrator clearing its claim to use it again)
// stays, and so does its directory.
func (r *VolumeReconciler) deleteReleased(ctx context.Context, pv *corev1.PersistentVolume) (bool, error) {
	err := r.Delete(ctx, pv, client.Preconditions{UID: &pv.UID, ResourceVersion: &pv.ResourceVersion})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return false, nil // changed meanwhile; its update brings us back
	}
	return err == nil, err
}

// purge removes the directory of a volume retire deleted, from where it was moved aside.
func (r *VolumeReconciler) purge(ctx context.Context, pv *corev1.PersistentVolume) {
	aside := r.asideOf(pv)
	defer r.removing.Delete(aside)
	volumeDirectoryMissing.DeletePartialMatch(map[string]string{labelVolume: pv.Name})
	if err := r.Root.RemoveAll(aside); err != nil {
		r.stepFailed(pv, "RemoveDirectory",
			"Node %s deleted volume %s but cannot remove its directory, moved aside to %s: %v",
			r.NodeName, pv.Name, path.Join(r.HostRoot, aside), err)
		return // the volume is gone: nothing brings it back
	}
	volumesDeleted.Inc()
	logf.FromContext(ctx).Info("Deleted released PersistentVolume and its directory", "pv", pv.Name, "path", localPath(pv))
	r.Recorder.Eventf(pv, nil, corev1.EventTypeNormal, "CleanedUp", "Delete",
		"Node %s removed directory %s and volume %s, released with reclaim policy Delete", r.NodeName, localPath(pv), pv.Name)
}

// cleanupRefusal says why the directory of released volume pv, as just read from the API server,
// must be kept, or "" when retire may go on: the volume is one this agent makes for a claim group
// (its name is the group's on this node and its path exactly the group's directory), and the
// claim it was released from is gone (not found, or another of that name that does not ask for
// this volume by name). Everything is read from the API server: a cache that lags must not turn
// a doubt into a deletion.
func (r *VolumeReconciler) cleanupRefusal(ctx context.Context, pv *corev1.PersistentVolume) (string, error) {
	g, ok := r.groupOfVolume(pv)
	switch {
	case !ok || !r.isOurVolume(pv):
		return fmt.Sprintf("it is not a volume this node's agent makes (for its labels it would be named %s)",
			r.volumeName(g)), nil
	case r.relativePath(pv) != g.dir():
		return fmt.Sprintf("its path is not its group's directory %s", path.Join(r.HostRoot, g.dir())), nil
	case pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID == "":
		return "it names no claim it was released from", nil
	}
	ref := pv.Spec.ClaimRef
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}, pvc)
	switch {
	case err == nil && pvc.UID == ref.UID:
		return fmt.Sprintf("its claim %s/%s still exists (a status set to Released by mistake?)",
			ref.Namespace, ref.Name), nil
	case err == nil && pvc.Spec.VolumeName == pv.Name:
		// Made anew by someone who wants this volume's data back (spec.volumeName).
		return fmt.Sprintf("claim %s/%s asks for this volume by name", ref.Namespace, ref.Name), nil
	case err != nil && !apierrors.IsNotFound(err):
		return "", err
	}
	return "", nil
}

// asideOf is where the directory of a volume being deleted is moved first: beside it, named
// after the volume's uid.
func (a *Agent) asideOf(pv *corev1.PersistentVolume) string {
	return hostfs.Aside(a.relativePath(pv), string(pv.UID))
}

// diskInDoubt says why the node's volume directories cannot be trusted now, or "": another bound
// data volume of this node has lost its directory, which is what a data disk that did not mount
// looks like. Until it is back, nothing is removed or made there: a directory that the disk
// would later cover, or that it should have held, is not this agent's to decide about.
func (a *Agent) diskInDoubt(ctx context.Context, except string) (string, error) {
	list := &corev1.PersistentVolumeList{}
	if err := a.List(ctx, list, client.UnsafeDisableDeepCopy); err != nil { // read, never changed
		return "", err
	}
	volumesOf := map[string][]string{} // by directory
	var dirs []string
	for i := range list.Items {
		pv := &list.Items[i]
		if pv.Name == except || pv.Status.Phase != corev1.VolumeBound || !a.isOurVolume(pv) ||
			pv.Labels[tarsv1beta1.LabelLocalVolume] == tarsv1beta1.DelayBindVolumeName {
			continue
		}
		dir := a.relativePath(pv)
		if volumesOf[dir] == nil {
			dirs = append(dirs, dir)
		}
		volumesOf[dir] = append(volumesOf[dir], pv.Name)
	}
	// Every volume of the node is checked at each provision: one pass over the directories.
	gone, err := a.Root.Missing(dirs)
	if err != nil || len(gone) == 0 {
		return "", nil //nolint:nilerr // an unreadable root says nothing of a disk; making the directory will say
	}
	var missing []string
	for _, dir := range gone {
		missing = append(missing, volumesOf[dir]...)
	}
	slices.Sort(missing)
	return fmt.Sprintf("the directories of %d bound volume(s) of this node are missing (%s): a data disk not mounted?",
		len(missing), strings.Join(missing[:min(3, len(missing))], ", ")), nil
}

// hostDirectoryVolumes lists the volumes that mount a host directory and may be on this node (a
// volume whose node is not certain counts as this node's), in any phase. They are read from the
// API server, every volume of the cluster, not from this node's cache: a volume made by hand
// need not carry the labels that cache selects.
func (a *Agent) hostDirectoryVolumes(ctx context.Context) ([]corev1.PersistentVolume, error) {
	list := &corev1.PersistentVolumeList{}
	if err := a.APIReader.List(ctx, list); err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list.Items, func(pv corev1.PersistentVolume) bool {
		return hostPathOf(&pv) == "" || !a.mayBeOnThisNode(&pv)
	}), nil
}

// overlapping names a volume of vols, other than the one whose UID is except (if not empty),
// whose host path is the clean path p, or above or below it; "" when there is none.
func overlapping(vols []corev1.PersistentVolume, p string, except types.UID) string {
	for i := range vols {
		other := &vols[i]
		if except != "" && other.UID == except {
			continue
		}
		if q := path.Clean(hostPathOf(other)); within(p, q) || within(q, p) {
			return other.Name
		}
	}
	return ""
}

// hostPathOf is the host directory a volume mounts, or "" for one that is not a host directory.
func hostPathOf(pv *corev1.PersistentVolume) string {
	switch {
	case pv.Spec.Local != nil:
		return pv.Spec.Local.Path
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path
	}
	return ""
}

// within says whether the clean absolute path p is dir or below it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

// mayBeOnThisNode says whether a volume may live on this node: its hostname label names this
// node's, or its node affinity does not rule this node out (a volume without one may be mounted
// anywhere). A label and an affinity that disagree count as this node's.
func (a *Agent) mayBeOnThisNode(pv *corev1.PersistentVolume) bool {
	if pv.Labels[corev1.LabelHostname] == a.Hostname {
		return true
	}
	if pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return true
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		if !namesOtherHost(term, a.Hostname) {
			return true
		}
	}
	return false
}

// namesOtherHost says whether a node selector term requires a kubernetes.io/hostname other than
// hostname.
func namesOtherHost(term corev1.NodeSelectorTerm, hostname string) bool {
	for _, req := range term.MatchExpressions {
		if req.Key == corev1.LabelHostname && req.Operator == corev1.NodeSelectorOpIn &&
			!slices.Contains(req.Values, hostname) {
			return true
		}
	}
	return false
}

// watchClaim brings the claim of a bound volume of this node into the agent's cache, so that its
// directory is kept like that of a volume the agent provisioned. A claim that Kubernetes bound to
// a volume made beforehand (by TarsK8S's agents, or an administrator) never got the scheduler's
// selected-node, and so not the label tars.io/SelectedNode that the cache selects: the agent of
// the volume's node gives it that label. The claim is read from the API server and labelled only
// if it is the one the volume names and is bound to it.
func (r *VolumeReconciler) watchClaim(ctx context.Context, pv *corev1.PersistentVolume) (ctrl.Result, error) {
	ref := pv.Spec.ClaimRef
	label := tarsv1beta1.SelectedNodeLabelValue(r.NodeName)
	if ref == nil || label == "" { // without a label value, the cache holds every tars claim
		return ctrl.Result{}, nil
	}
	key := client.ObjectKey{Namespace: ref.Namespace, Name: ref.Name}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := r.Get(ctx, key, pvc); err == nil && pvc.UID == ref.UID {
		return ctrl.Result{}, nil // in the cache already
	}
	if err := r.APIReader.Get(ctx, key, pvc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	switch {
	case pvc.UID != ref.UID || !r.isOurClaim(pvc) || pvc.Labels[tarsv1beta1.LabelSelectedNode] == label:
		return ctrl.Result{}, nil
	case pvc.Spec.VolumeName != pv.Name:
		// The PV controller completes the claim's side of the binding after the volume's; that
		// write does not reach this agent's cache.
		return ctrl.Result{RequeueAfter: claimBindingWait}, nil
	}
	patch := client.MergeFromWithOptions(pvc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	pvc.Labels[tarsv1beta1.LabelSelectedNode] = label
	if err := r.Patch(ctx, pvc, patch); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{RequeueAfter: claimBindingWait}, nil // the claim changed meanwhile: look again
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	logf.FromContext(ctx).Info("Labelled claim bound to a volume of this node", "claim", key, "pv", pv.Name)
	return ctrl.Result{}, nil
}

// claimBindingWait is how soon to look again at a bound volume whose claim is not bound to it yet.
const claimBindingWait = 2 * time.Second

// collect deletes an unbound volume (the agent makes every volume bound to its claim: these are
// volumes made beforehand, by TarsK8S's agents say) once no claim of its group has waited for
// it for the grace period. The delete carries the volume's resourceVersion: if the scheduler has
// bound it meanwhile, the delete fails instead of taking a bound volume away. Its directory
// goes only if empty.
func (r *VolumeReconciler) collect(ctx context.Context, pv *corev1.PersistentVolume) (ctrl.Result, error) {
	if pv.Spec.ClaimRef != nil {
		return ctrl.Result{}, nil // being bound
	}
	g, ok := r.groupOfVolume(pv)
	if !ok || r.relativePath(pv) != g.dir() {
		return ctrl.Result{}, nil // not a volume this agent makes: someone else's to remove
	}
	// Released, then made available again by an administrator while its cleanup, cut short by a
	// restart, had its directory aside: the directory is the volume's still.
	r.restoreAside(ctx, pv)
	if retained, err := r.retainData(ctx, pv, g); err != nil || retained {
		return ctrl.Result{}, err // the update brings it back
	}
	idle := pv.CreationTimestamp.Time
	if t := pv.Status.LastPhaseTransitionTime; t != nil && t.After(idle) {
		idle = t.Time
	}
	if wait := r.GCGracePeriod - time.Since(idle); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	// The scheduler binds an Available volume of a waiting claim's group on this node rather than
	// have a new one made. The claims of other nodes are not in the cache: ask the API server.
	waiting, err := r.groupWaits(ctx, g)
	if err != nil || waiting {
		return ctrl.Result{RequeueAfter: r.GCGracePeriod}, err
	}
	r.dirChange.RLock()
	defer r.dirChange.RUnlock()
	err = r.Delete(ctx, pv, client.Preconditions{UID: &pv.UID, ResourceVersion: &pv.ResourceVersion})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return ctrl.Result{}, nil // bound or changed meanwhile: its update brings us back
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	removed, err := r.Root.RemoveIfEmpty(r.relativePath(pv))
	if err != nil {
		agentErrors.WithLabelValues(reasonCleanup).Inc()
		logf.FromContext(ctx).Error(err, "Failed to remove the empty directory of a collected volume", "pv", pv.Name)
	}
	volumesGarbageCollected.Inc()
	logf.FromContext(ctx).Info("Deleted unneeded PersistentVolume", "pv", pv.Name, "directoryRemoved", removed)
	note := "kept its directory, which holds data"
	switch {
	case err != nil:
		note = fmt.Sprintf("cannot remove its directory: %v", err)
	case removed:
		note = "removed its empty directory"
	}
	r.Recorder.Eventf(pv, nil, corev1.EventTypeNormal, "GarbageCollected", "Delete",
		"Node %s deleted volume %s: no claim waited for it for %s; %s", r.NodeName, pv.Name, r.GCGracePeriod, note)
	return ctrl.Result{}, nil
}

// retainData gives an unbound volume made beforehand whose directory holds data reclaim policy
// Retain, and says whether it did. The scheduler binds such a volume to a claim by itself (the
// agent never sees that claim before it is bound); with Delete, the claim's deletion would then
// erase data that is not the claim's: TarsK8S, whose reclaim was inverted, left data in the
// directories of Delete volumes. The update carries the volume's resourceVersion.
func (r *VolumeReconciler) retainData(ctx context.Context, pv *corev1.PersistentVolume, g group) (bool, error) {
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete ||
		g.volume == tarsv1beta1.DelayBindVolumeName {
		return false, nil
	}
	held, err := r.Root.HoldsData(g.dir())
	if err != nil || !held {
		return false, err
	}
	patch := client.MergeFromWithOptions(pv.DeepCopy(), client.MergeFromWithOptimisticLock{})
	pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	if err := r.Patch(ctx, pv, patch); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return true, nil // changed meanwhile: its update brings it back
		}
		return false, err
	}
	logf.FromContext(ctx).Info("Set reclaim policy Retain on a volume whose directory holds data",
		"pv", pv.Name, "path", localPath(pv))
	r.Recorder.Eventf(pv, nil, corev1.EventTypeNormal, "RetainedExistingData", "Update",
		"Node %s set reclaim policy Retain on volume %s: its directory %s already holds data, which deleting a claim "+
			"bound to it must not erase", r.NodeName, pv.Name, localPath(pv))
	return true, nil
}

// groupWaits says whether a claim of group g waits for a volume.
func (r *VolumeReconciler) groupWaits(ctx context.Context, g group) (bool, error) {
	list := &corev1.PersistentVolumeClaimList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(g.namespace), client.MatchingLabels(g.labels())); err != nil {
		return false, err
	}
	return slices.ContainsFunc(list.Items, func(pvc corev1.PersistentVolumeClaim) bool {
		return r.waitsForVolume(&pvc)
	}), nil
}

// SetupWithManager watches this node's volumes and claims: a claim that binds or goes away may
// leave a volume of its group unneeded.
func (r *VolumeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&corev1.PersistentVolume{}).
		Watches(&corev1.PersistentVolumeClaim{}, handler.EnqueueRequestsFromMapFunc(r.volumeOfClaim)).
		Named("volume").
		Complete(r)
}

// volumeOfClaim maps a claim to the volume its group has on this node, if there is one.
func (r *VolumeReconciler) volumeOfClaim(ctx context.Context, obj client.Object) []reconcile.Request {
	g, ok := groupOf(obj.GetNamespace(), obj.GetLabels())
	if !ok {
		return nil
	}
	key := client.ObjectKey{Name: r.volumeName(g)}
	if err := r.Get(ctx, key, &corev1.PersistentVolume{}); err != nil {
		return nil // none here (this node's volumes are the only ones in the cache)
	}
	return []reconcile.Request{{NamespacedName: key}}
}
