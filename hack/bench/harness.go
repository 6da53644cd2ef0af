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

// The bench's harness, shared by every scenario: the cluster and its clients, the bench's
// TServers, and cleaning up and waiting between runs.

package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	volumehelpers "k8s.io/component-helpers/storage/volume"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/agent"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

type bench struct {
	o       options
	cluster *localcluster.Cluster
	c       client.Client
	// obs watches the runs' claims, pods and volumes: polling them with lists would load the
	// API server the bench measures.
	obs     cache.Cache
	manager *localcluster.Process
	agents  []*localcluster.Process
	// apiServer reaches the API server's metrics and profiles (apiServerClient).
	apiServer *http.Client
	// components reaches kube-controller-manager's and kube-scheduler's metrics (clientUses).
	components *http.Client
	// volumesBy is how the runs of Kubernetes alone get their volumes (lowerBoundVolumes).
	volumesBy volumeSource
}

// volumeSource is how a run of Kubernetes alone gets its volumes, each one per claim, as an
// agent makes it.
type volumeSource int

const (
	// precreated: made before the run, bound to nothing, on nodes picked beforehand; the
	// scheduler binds them, as any existing volume (precreate).
	precreated volumeSource = iota
	// perClaim: made on nodes picked beforehand the moment their claims appear, each bound to
	// its claim as the agents' are (volumePerClaim).
	perClaim
	// provisioned: made by a provisioner that does nothing else, on the node the scheduler
	// selected for the claim, bound to it (volumePerClaim with t-storage-class of
	// trivialProvisioner): Kubernetes' own protocol of provisioning, without the operator.
	provisioned
)

// trivialProvisioner is the provisioner of t-storage-class in the runs of volumeSource
// provisioned: the bench itself.
const trivialProvisioner = "bench.tserver-operator.io/trivial"

// quietCPU is how much CPU all components together may use in a second on this cluster when it
// is quiet: the node heartbeats grow with its nodes.
func (b *bench) quietCPU() float64 { return quietCPU * max(1, float64(len(b.cluster.Nodes))/10) }

// apiRequests is how many requests the API server has served since it started
// (apiserver_request_total, whoever asked), by verb, resource and subresource.
func (b *bench) apiRequests(ctx context.Context) (map[string]float64, error) {
	c, err := b.apiServerClient()
	if err != nil {
		return nil, err
	}
	return apiServerMetric(ctx, c, b.cluster.Config.Host, "apiserver_request_total", "verb", "resource", "subresource")
}

// apiServerClient reaches the API server's metrics and profiles; made at its first use.
func (b *bench) apiServerClient() (*http.Client, error) {
	if b.apiServer == nil {
		var err error
		if b.apiServer, err = rest.HTTPClientFor(b.cluster.Config); err != nil {
			return nil, err
		}
	}
	return b.apiServer, nil
}

// clusterOptions are those of a bench cluster of nodes, its state in stateDir: the operator's
// CRDs, webhooks and storage class installed.
func clusterOptions(o options, stateDir string, nodes []localcluster.Node) localcluster.Options {
	return localcluster.Options{
		BinaryDir:    o.binDir,
		StateDir:     stateDir,
		CRDPaths:     []string{"config/crd/bases"},
		WebhookPaths: []string{"config/webhook/manifests.yaml"},
		Manifests:    []string{"config/storageclass"},
		Nodes:        nodes,
		SchedulerFlags: func() []string {
			if o.schedulerQPS == 0 {
				return nil
			}
			return []string{"--kube-api-qps=" + strconv.Itoa(o.schedulerQPS),
				"--kube-api-burst=" + strconv.Itoa(2*o.schedulerQPS)}
		}(),
	}
}

// tserver is a bench TServer: replicas of one container with volumes tLocalVolume mounts.
func (b *bench) tserver(ns, app string, i int) *tarsv1beta1.TServer {
	server := fmt.Sprintf("s%d", i)
	ts := &tarsv1beta1.TServer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: tarsv1beta1.ResourceName(app, server)},
		Spec: tarsv1beta1.TServerSpec{
			App: app, Server: server, SubType: tarsv1beta1.SubTypeNormal,
			Normal:  &tarsv1beta1.TServerNormal{Ports: []tarsv1beta1.TServerPort{{Name: "http", Port: 8080, IsTcp: true}}},
			Release: &tarsv1beta1.TServerRelease{ID: "v1", Image: "bench/" + server + ":v1"},
			K8S:     tarsv1beta1.TServerK8S{Replicas: int32(b.o.replicas)},
		},
	}
	for v := range b.o.volumes {
		ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
			Name: fmt.Sprintf("data%d", v), MountPath: fmt.Sprintf("/data%d", v),
			Source: tarsv1beta1.TK8SMountSource{TLocalVolume: &tarsv1beta1.TLocalVolume{UID: "1000", GID: "0", Mode: "755"}},
		})
	}
	return ts
}

// clients makes a client of the cluster at cfg, for core and TServer kinds, and an observer.
func clients(ctx context.Context, cfg *rest.Config) (client.Client, cache.Cache, error) {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = tarsv1beta1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, nil, err
	}
	obs, err := observer(ctx, cfg, scheme)
	if err != nil {
		return nil, nil, err
	}
	return c, obs, nil
}

// observer starts a cache of every claim and pod and of the tars volumes, and waits for it.
func observer(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (cache.Cache, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.DisableCompression = true
	tars, err := labels.Parse(tarsv1beta1.LabelServerApp)
	if err != nil {
		return nil, err
	}
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: map[client.Object]cache.ByObject{
		&corev1.PersistentVolume{}: {Label: tars},
	}})
	if err != nil {
		return nil, err
	}
	for _, obj := range []client.Object{
		&corev1.PersistentVolumeClaim{}, &corev1.Pod{}, &corev1.PersistentVolume{}, &appsv1.StatefulSet{},
	} {
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, err
		}
	}
	go func() {
		if err := c.Start(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "observer: %v\n", err)
		}
	}()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("observer: caches did not sync")
	}
	return c, nil
}

// cleanUp deletes a run's namespace and volumes, and waits until they are gone; then it removes
// the run's directories from every node's host root, as an administrator would after deleting
// volumes by hand. Left there, they would be orphans to every later run's agents, whose scans
// then list every volume of the cluster: a cost of this bench's shortcut, not of a cluster.
func (b *bench) cleanUp(ctx context.Context, name string) error {
	// A scale run's thousands of pods take minutes.
	took, err := b.deleteAndWait(ctx, name, map[string]string{tarsv1beta1.LabelServerApp: name}, 15*time.Minute)
	if err != nil {
		return fmt.Errorf("cleaning up run %s: %w", name, err)
	}
	for _, n := range b.cluster.Nodes {
		if err := os.RemoveAll(filepath.Join(b.cluster.HostRoot(n.Name), name)); err != nil {
			return fmt.Errorf("cleaning up run %s: %w", name, err)
		}
	}
	fmt.Printf("  cleaned up %s in %s\n", name, took.Round(10*time.Millisecond))
	return nil
}

// deleteAndWait deletes namespace and the volumes labelled volumeLabels, and waits up to timeout
// until both are gone; it returns how long that took.
func (b *bench) deleteAndWait(ctx context.Context, namespace string, volumeLabels map[string]string,
	timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := b.c.Delete(ctx, ns); client.IgnoreNotFound(err) != nil {
		return 0, err
	}
	// One by one: one delete of the collection of thousands outlasts the API server's request
	// timeout.
	pvs := &metav1.PartialObjectMetadataList{}
	pvs.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PersistentVolumeList"))
	if err := b.c.List(ctx, pvs, client.MatchingLabels(volumeLabels)); err != nil {
		return 0, err
	}
	if err := deleteEach(ctx, len(pvs.Items), func(ctx context.Context, i int) error {
		return b.c.Delete(ctx, &pvs.Items[i])
	}); err != nil {
		return 0, err
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pvs := &metav1.PartialObjectMetadataList{}
		pvs.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("PersistentVolumeList"))
		if err := b.c.List(ctx, pvs, client.MatchingLabels(volumeLabels), client.Limit(1)); err != nil || len(pvs.Items) > 0 {
			return false, err
		}
		err := b.c.Get(ctx, client.ObjectKeyFromObject(ns), ns)
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	return time.Since(start), err
}

// deleteEach deletes n objects, sixteen at a time: delete(i) deletes the i-th; one already gone
// is no error.
func deleteEach(ctx context.Context, n int, deleteOne func(ctx context.Context, i int) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error { return client.IgnoreNotFound(deleteOne(ctx, i)) })
	}
	return g.Wait()
}

// useProvisioner makes t-storage-class one of provisioner (a class's provisioner is immutable:
// it is made anew), and waits until the scheduler can have seen it.
func (b *bench) useProvisioner(ctx context.Context, provisioner string) error {
	sc := &storagev1.StorageClass{}
	if err := b.c.Get(ctx, client.ObjectKey{Name: tarsv1beta1.StorageClassName}, sc); err != nil {
		return err
	}
	if sc.Provisioner == provisioner {
		return nil
	}
	if err := b.c.Delete(ctx, sc); err != nil {
		return err
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true,
		func(ctx context.Context) (bool, error) {
			err := b.c.Get(ctx, client.ObjectKeyFromObject(sc), &storagev1.StorageClass{})
			return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
		})
	if err != nil {
		return err
	}
	fresh := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: sc.Name, Labels: sc.Labels, Annotations: sc.Annotations},
		Provisioner:       provisioner,
		ReclaimPolicy:     sc.ReclaimPolicy,
		VolumeBindingMode: sc.VolumeBindingMode,
	}
	if err := b.c.Create(ctx, fresh); err != nil {
		return err
	}
	time.Sleep(time.Second) // the scheduler's, controller-manager's and agents' informers
	fmt.Printf("  t-storage-class: provisioner %s\n", provisioner)
	return nil
}

// stopOperator stops the manager and the agents.
func (b *bench) stopOperator() error {
	var err error
	if b.manager != nil {
		err = b.manager.Stop()
		b.manager = nil
	}
	return errors.Join(err, b.stopAgents())
}

// stopAgents stops the agents of the previous pair.
func (b *bench) stopAgents() error {
	errs := make([]error, 0, len(b.agents))
	for _, a := range b.agents {
		errs = append(errs, a.Stop())
	}
	b.agents = nil
	return errors.Join(errs...)
}

// waitAvailable waits until n volumes of app are Available.
func (b *bench) waitAvailable(ctx context.Context, app string, n int) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Minute, true,
		func(ctx context.Context) (bool, error) {
			pvs := &corev1.PersistentVolumeList{}
			if err := b.obs.List(ctx, pvs, client.MatchingLabels{tarsv1beta1.LabelServerApp: app},
				client.UnsafeDisableDeepCopy); err != nil {
				return false, err
			}
			available := 0
			for _, pv := range pvs.Items {
				if pv.Status.Phase == corev1.VolumeAvailable {
					available++
				}
			}
			return available == n, nil
		})
}

// volume is the PersistentVolume the agent of node would make for volume of replica of ts: its
// own builder, given the claim the StatefulSet controller makes; but for precreated, naming that
// claim, not its UID (volumePerClaim adds it once the claim exists).
func (b *bench) volume(ts *tarsv1beta1.TServer, volume string, replica int, node string) *corev1.PersistentVolume {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ts.Namespace, Name: claimName(ts, volume, replica),
			Labels: map[string]string{
				tarsv1beta1.LabelServerApp: ts.Spec.App, tarsv1beta1.LabelServerName: ts.Spec.Server,
				tarsv1beta1.LabelLocalVolume: volume,
			}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			},
		},
	}
	cfg := agent.Config{NodeName: node, Hostname: node, HostRoot: localcluster.ProductionHostRoot,
		StorageClassName: tarsv1beta1.StorageClassName}
	pv := cfg.Volume(claim, corev1.PersistentVolumeReclaimDelete)
	switch b.volumesBy {
	case precreated:
		pv.Spec.ClaimRef = nil // the scheduler binds it, as any existing volume
	case provisioned:
		pv.Annotations[volumehelpers.AnnDynamicallyProvisioned] = trivialProvisioner
	}
	return pv
}

// claimName is the name of the claim the StatefulSet controller makes for volume of replica of
// ts: the claim template's name, then the pod's.
func claimName(ts *tarsv1beta1.TServer, volume string, replica int) string {
	return fmt.Sprintf("%s-%s-%d", volume, ts.Name, replica)
}

// volumesOf counts the volumes of the run whose app is app.
func (b *bench) volumesOf(ctx context.Context, app string) (int, error) {
	list := &corev1.PersistentVolumeList{}
	err := b.c.List(ctx, list, client.MatchingLabels{tarsv1beta1.LabelServerApp: app})
	return len(list.Items), err
}
