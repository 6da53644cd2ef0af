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
	"errors"
	"os"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

// The faults a run injects, the keys of Report.Faults (an agent's kill says what it interrupted).
const (
	faultAgent             = "agent SIGKILL"
	faultManager           = "manager SIGKILL"
	faultControllerManager = "kube-controller-manager SIGKILL"
	faultAPIServer         = "kube-apiserver restart"

	whileProvisioning = " while provisioning"
	whileCleaningUp   = " while cleaning up"

	// restartWait is how long a kill waits for its target to run again.
	restartWait = 30 * time.Second
)

// inject injects a fault of kind; a process that is down already (waiting for its restart) is
// not killed again, and the fault is counted as skipped.
func (r *run) inject(ctx context.Context, kind string) {
	var p *localcluster.Process
	what := kind
	switch kind {
	case faultAPIServer:
		r.logf("fault: restarting kube-apiserver")
		if err := r.cfg.Cluster.RestartAPIServer(); err != nil {
			r.logf("fault: %v", err)
			r.count(r.report.Faults, kind+" failed")
			return
		}
		r.count(r.report.Faults, kind)
		return
	case faultAgent:
		node, why := r.agentTarget(ctx)
		p, what = r.cfg.Cluster.Agent(node), kind+why
	case faultManager:
		p = r.cfg.Cluster.Process("manager")
	case faultControllerManager:
		p = r.cfg.Cluster.Process("kube-controller-manager")
	}
	r.crash(ctx, p, kind, what)
}

// crash kills p as a fault of kind (counted as what); one waiting to be started again after
// an earlier kill is killed once it runs again (within restartWait), so that every fault lands.
func (r *run) crash(ctx context.Context, p *localcluster.Process, kind, what string) {
	if p == nil {
		r.logf("fault: %s skipped: not running", what)
		r.count(r.report.Faults, kind+" skipped")
		return
	}
	for deadline := time.Now().Add(restartWait); !p.Running() && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(100 * time.Millisecond)
	}
	r.logf("fault: %s (%s, pid %d)", what, p.Name, p.Pid())
	if err := p.Crash(); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			r.logf("fault: %s skipped: down already", what)
			r.count(r.report.Faults, kind+" skipped")
			return
		}
		r.logf("fault: %v", err)
		r.count(r.report.Faults, kind+" failed")
		return
	}
	r.count(r.report.Faults, what)
}

// killAtRelease kills the agent of node as the volume, whose claim a user just deleted, is
// released: amid its cleanup.
func (r *run) killAtRelease(ctx context.Context, pvName, node string) {
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		pv := &corev1.PersistentVolume{}
		err := r.cfg.Client.Get(ctx, client.ObjectKey{Name: pvName}, pv)
		if apierrors.IsNotFound(err) ||
			err == nil && (pv.Status.Phase == corev1.VolumeReleased || pv.DeletionTimestamp != nil) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.crash(ctx, r.cfg.Cluster.Agent(node), faultAgent, faultAgent+whileCleaningUp)
}

// agentTarget picks the node whose running agent to kill: preferably one that a claim waits on
// to provision, else one with a released volume to clean up, else any; and says which.
func (r *run) agentTarget(ctx context.Context) (node, why string) {
	up := func(node string) bool {
		p := r.cfg.Cluster.Agent(node)
		return slices.Contains(r.cfg.Nodes, node) && p != nil && p.Running()
	}
	var claims corev1.PersistentVolumeClaimList
	if err := r.cfg.Client.List(ctx, &claims, client.InNamespace(r.cfg.Namespace)); err == nil {
		var waiting []string
		for _, pvc := range claims.Items {
			n := pvc.Annotations[volumehelpers.AnnSelectedNode]
			if pvc.Spec.VolumeName == "" && up(n) {
				waiting = append(waiting, n)
			}
		}
		if len(waiting) > 0 {
			return waiting[r.pickFault(len(waiting))], whileProvisioning
		}
	}
	var pvs corev1.PersistentVolumeList
	if err := r.cfg.Client.List(ctx, &pvs, client.MatchingLabels{tarsv1beta1.LabelServerApp: App}); err == nil {
		var releasing []string
		for _, pv := range pvs.Items {
			n := pv.Labels[corev1.LabelHostname]
			if pv.Status.Phase == corev1.VolumeReleased && pv.Spec.ClaimRef != nil &&
				pv.Spec.ClaimRef.Namespace == r.cfg.Namespace && up(n) {
				releasing = append(releasing, n)
			}
		}
		if len(releasing) > 0 {
			return releasing[r.pickFault(len(releasing))], whileCleaningUp
		}
	}
	nodes := slices.DeleteFunc(slices.Clone(r.cfg.Nodes), func(n string) bool { return !up(n) })
	if len(nodes) == 0 {
		return r.cfg.Nodes[r.pickFault(len(r.cfg.Nodes))], ""
	}
	return nodes[r.pickFault(len(nodes))], ""
}
