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
	"io/fs"
	"slices"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
)

// usageStep is how many directory entries a pass reads between two looks at its rate.
const usageStep = 1000

// usageMeter measures what the directory of each bound volume of this node holds, one volume
// after the other, a pass every UsageInterval, reading at most UsageRate directory entries a
// second, so that a volume of millions of files costs time, not a burst of I/O that would slow
// the node's services or the agent's provisioning (which runs beside it, never behind it). A
// volume's figures change when its pass over it is complete; a volume no longer bound here
// loses them.
type usageMeter struct {
	*Agent
	cache cache.Cache
	// reported are the label values of the volumes with figures, by volume name.
	reported map[string][]string
}

// NeedLeaderElection is false: each agent measures its own node.
func (u *usageMeter) NeedLeaderElection() bool { return false }

// Start measures once the caches have filled, then every UsageInterval, until ctx ends.
func (u *usageMeter) Start(ctx context.Context) error {
	if !u.cache.WaitForCacheSync(ctx) {
		return nil
	}
	log := ctrl.Log.WithName("agent").WithName("usage").WithValues("node", u.NodeName)
	ctx = logf.IntoContext(ctx, log)
	wait.UntilWithContext(ctx, u.pass, u.UsageInterval)
	return nil
}

// pass measures every bound volume of this node once.
func (u *usageMeter) pass(ctx context.Context) {
	log := logf.FromContext(ctx)
	start := time.Now()
	list := &corev1.PersistentVolumeList{}
	if err := u.List(ctx, list); err != nil {
		log.Error(err, "Failed to list volumes")
		return
	}
	measured := map[string][]string{}
	for i := range list.Items {
		pv := &list.Items[i]
		labels, ok := u.usageLabels(pv)
		if !ok {
			continue
		}
		used, err := u.measureDir(ctx, u.relativePath(pv))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // a missing directory is reported as such
				log.Error(err, "Failed to measure a volume's directory", "pv", pv.Name, "path", localPath(pv))
			}
			continue
		}
		volumeUsedBytes.WithLabelValues(labels...).Set(float64(used.Bytes))
		volumeUsedInodes.WithLabelValues(labels...).Set(float64(used.Inodes))
		measured[pv.Name] = labels
	}
	for name, labels := range u.reported {
		if _, ok := measured[name]; !ok || !slices.Equal(measured[name], labels) {
			volumeUsedBytes.DeleteLabelValues(labels...)
			volumeUsedInodes.DeleteLabelValues(labels...)
		}
	}
	u.reported = measured
	usagePassSeconds.Set(time.Since(start).Seconds())
}

// usageLabels are the metric labels of a bound volume of this node, if it is one.
func (u *usageMeter) usageLabels(pv *corev1.PersistentVolume) ([]string, bool) {
	if !u.boundHere(pv) {
		return nil, false
	}
	ref := pv.Spec.ClaimRef
	app, server := pv.Labels[tarsv1beta1.LabelServerApp], pv.Labels[tarsv1beta1.LabelServerName]
	return []string{ref.Namespace, ref.Name, pv.Name, tarsv1beta1.ResourceName(app, server),
		pv.Labels[tarsv1beta1.LabelLocalVolume], u.NodeName}, true
}

// measureDir makes one pass over the directory rel below the root, reading no faster than the
// agent's measuring rate allows (shared by the usage meter and the orphan scan).
func (a *Agent) measureDir(ctx context.Context, rel string) (hostfs.Usage, error) {
	m, err := a.Root.Measure(rel)
	if err != nil {
		return hostfs.Usage{}, err
	}
	defer m.Close()
	for read, done := 0, false; !done; {
		done = m.Step(usageStep)
		if err := a.measureRate.WaitN(ctx, m.Entries()-read); err != nil {
			return hostfs.Usage{}, err
		}
		read = m.Entries()
	}
	if err := m.Err(); err != nil {
		logf.FromContext(ctx).Info("Measured a directory in part", "path", rel, "reason", err.Error())
	}
	return m.Usage(), nil
}

// newMeasureRate is the limiter of the agent's measuring: perSecond directory entries a second,
// at most a step's worth at once; no limit for 0.
func newMeasureRate(perSecond int) *rate.Limiter {
	if perSecond <= 0 {
		return rate.NewLimiter(rate.Inf, usageStep)
	}
	return rate.NewLimiter(rate.Limit(perSecond), usageStep)
}
