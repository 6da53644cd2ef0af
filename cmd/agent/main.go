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

// Command tserver-agent is the node agent: one per node (a DaemonSet), it provisions node-local
// PersistentVolumes for TServer claims (see internal/agent). It is a binary of its own, beside
// the manager's in the same image, because it runs on every node: without the manager's
// webhooks, metrics authorisation and their dependencies it is a third smaller and touches
// about half the memory (docs/performance.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/agent"
	"github.com/tserver-operator/tserver-operator/internal/hostfs"
	"github.com/tserver-operator/tserver-operator/internal/logging"
	"github.com/tserver-operator/tserver-operator/internal/memory"
)

func main() {
	// One thread runs Go code: an agent's work is a few requests now and then, and a second P
	// only costs the wake-ups of handing goroutines between threads, on every node. GOMAXPROCS
	// in the environment still wins.
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(1)
	}
	os.Exit(runAgent(os.Args[1:]))
}

// runAgent runs the node agent until a signal stops it, and returns the exit code.
func runAgent(args []string) int {
	var (
		cfg                      agent.Config
		hostRootMount            string
		metricsAddr, probeAddr   string
		pprofAddr                string
		zapOpts                  = zap.Options{}
		defaultNodeName, nodeSet = os.LookupEnv("NODE_NAME")
	)
	fs := flag.CommandLine
	fs.StringVar(&cfg.NodeName, "node-name", defaultNodeName,
		"The node this agent serves (default $NODE_NAME).")
	fs.StringVar(&cfg.HostRoot, "host-root", tarsv1beta1.DefaultHostRoot,
		"The host directory volumes live under, as written into PersistentVolumes.")
	fs.StringVar(&hostRootMount, "host-root-mount", "",
		"Where --host-root is reachable from this process, e.g. its hostPath mount in the agent's pod "+
			"(default: --host-root).")
	fs.StringVar(&cfg.StorageClassName, "storage-class", tarsv1beta1.StorageClassName,
		"The storage class of the claims and volumes to handle.")
	fs.DurationVar(&cfg.GCGracePeriod, "gc-grace-period", 10*time.Minute,
		"How long an unbound volume that no claim waits for is kept before it is deleted; and how long the "+
			"cleanup of a released volume may keep failing before the claims of its group waiting on the node "+
			"are handed back to the scheduler.")
	fs.DurationVar(&cfg.ResyncPeriod, "resync-period", time.Minute,
		"How often the owner and mode of bound volumes' directories are checked and repaired.")
	fs.DurationVar(&cfg.OrphanScanInterval, "orphan-scan-interval", 10*time.Minute,
		"How often the host root is scanned for volume directories that no PersistentVolume uses, which are "+
			"reported (event OrphanedDirectory, metric tserver_agent_orphaned_directory) and never removed; "+
			"0 disables the scan.")
	fs.DurationVar(&cfg.UsageInterval, "usage-interval", time.Minute,
		"How often the directories of this node's bound volumes are measured (metrics "+
			"tserver_agent_volume_used_bytes and _inodes); 0 disables the measuring.")
	fs.IntVar(&cfg.UsageRate, "usage-rate", 20000,
		"How many directory entries a second the measuring reads at most, so that volumes of millions of "+
			"files cost time, not bursts of I/O; 0 is no limit.")
	cfg.MinFreeSpace = mustFloor(agent.DefaultMinFreeSpace, false)
	cfg.MinFreeInodes = mustFloor(agent.DefaultMinFreeInodes, true)
	fs.Var(&floorFlag{&cfg.MinFreeSpace, false}, "min-free-space",
		"How much of the host root's filesystem must stay free for new volumes to be made on this node: a share "+
			"(12%) or an amount (20Gi). Below it the agent makes no new volume here and labels the node "+
			tarsv1beta1.LabelDiskFull+" (pods then prefer other nodes) until there is room again; volumes made "+
			"already are untouched. 0 turns the floor off.")
	fs.Var(&floorFlag{&cfg.MinFreeInodes, true}, "min-free-inodes",
		"How many of the host root's filesystem's inodes must stay free for new volumes to be made on this node: "+
			"a share (10%) or a number (100000); as --min-free-space.")
	fs.DurationVar(&cfg.DiskCheckInterval, "disk-check-interval", 10*time.Second,
		"How often the host root's free space and inodes are read to mark or unmark the node "+
			"(provisioning reads them afresh too).")
	fs.StringVar(&metricsAddr, "metrics-bind-address", ":8080",
		"The address the metrics endpoint binds to; 0 disables it.")
	fs.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "The address the probe endpoint binds to.")
	fs.StringVar(&pprofAddr, "pprof-bind-address", "", "The address Go's pprof endpoints (/debug/pprof/) bind to; "+
		"empty or 0 disables them.")
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if cfg.DiskCheckInterval <= 0 {
		_, _ = fmt.Fprintf(fs.Output(), "invalid value %q for flag -disk-check-interval: must be positive\n",
			cfg.DiskCheckInterval)
		return 2
	}
	ctrl.SetLogger(logging.DeferValues(zap.New(zap.UseFlagOptions(&zapOpts))))
	log := ctrl.Log.WithName("agent")
	releaseStartupPages(log, "initialised")
	if cfg.NodeName == "" {
		log.Error(nil, "No node name: set --node-name or NODE_NAME (the downward API's spec.nodeName)",
			"NODE_NAME set", nodeSet)
		return 2
	}
	if hostRootMount == "" {
		hostRootMount = cfg.HostRoot
	}
	if err := os.MkdirAll(hostRootMount, 0o755); err != nil {
		log.Error(err, "Failed to create the host root", "path", hostRootMount)
		return 1
	}
	root, err := hostfs.Open(hostRootMount)
	if err != nil {
		log.Error(err, "Failed to open the host root", "path", hostRootMount)
		return 1
	}
	defer func() { _ = root.Close() }()
	cfg.Root = root
	if os.Geteuid() != 0 {
		log.Info("Running as a non-root user: directories can get only this user as owner, "+
			"and the orphan scan reads only the directories this user may read", "uid", os.Geteuid())
	}

	ctx := ctrl.SetupSignalHandler()
	restCfg := ctrl.GetConfigOrDie()
	// The API server is in the same cluster: compressing every watch event and response costs
	// both ends CPU and saves no time.
	restCfg.DisableCompression = true
	_, stopProbes, err := agent.ServeWaitingProbes(probeAddr)
	if err != nil {
		log.Error(err, "Failed to serve the health probes", "address", probeAddr)
		return 1
	}
	cfg.Hostname, err = agent.Hostname(ctx, restCfg, cfg.NodeName)
	stopProbes()
	if err != nil {
		log.Error(err, "Failed to read the node", "node", cfg.NodeName)
		return 1
	}
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                 agent.NewScheme(),
		Cache:                  agent.CacheOptions(cfg.NodeName, cfg.Hostname, cfg.StorageClassName),
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		LeaderElection:         false, // one agent per node, each with its own volumes
	})
	if err != nil {
		log.Error(err, "Failed to create the manager")
		return 1
	}
	if err := agent.SetupWithManager(mgr, cfg); err != nil {
		log.Error(err, "Failed to set up the agent")
		return 1
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Failed to set up health check")
		return 1
	}
	hostRootReadable := func(*http.Request) error {
		_, err := os.Stat(root.Dir())
		return err
	}
	if err := mgr.AddReadyzCheck("host-root", hostRootReadable); err != nil {
		log.Error(err, "Failed to set up ready check")
		return 1
	}
	// Once the caches have filled, start-up is over: the agent is ready, and gives back the pages
	// only start-up touched.
	var synced atomic.Bool
	if err := mgr.AddReadyzCheck("caches", func(*http.Request) error {
		if !synced.Load() {
			return errors.New("caches not filled yet")
		}
		return nil
	}); err != nil {
		log.Error(err, "Failed to set up ready check")
		return 1
	}
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if mgr.GetCache().WaitForCacheSync(ctx) {
			synced.Store(true)
			releaseStartupPages(log, "caches filled")
		}
		return nil
	})); err != nil {
		log.Error(err, "Failed to set up the release of start-up pages")
		return 1
	}
	log.Info("Starting agent", "node", cfg.NodeName, "hostname", cfg.Hostname, "hostRoot", cfg.HostRoot,
		"hostRootMount", hostRootMount, "gcGracePeriod", cfg.GCGracePeriod, "orphanScanInterval", cfg.OrphanScanInterval,
		"usageInterval", cfg.UsageInterval, "usageRate", cfg.UsageRate, "minFreeSpace", cfg.MinFreeSpace,
		"minFreeInodes", cfg.MinFreeInodes, "diskCheckInterval", cfg.DiskCheckInterval)
	if err := mgr.Start(ctx); err != nil {
		log.Error(err, "Failed to run the agent")
		return 1
	}
	return 0
}

// releaseStartupPages gives back the pages of the binary that only start-up touched: Go's package
// initialisation (client-go and controller-runtime register every built-in API group), then
// the manager's start. Without it they stay resident, most of an agent's memory on every node.
func releaseStartupPages(log logr.Logger, after string) {
	released, err := memory.ReleaseStartupPages()
	if err != nil {
		log.Error(err, "Failed to release start-up pages", "after", after) // costs memory, nothing else
		return
	}
	log.Info("Released start-up pages", "after", after, "MiB", released>>20)
}

// floorFlag is a flag of a free-space floor (agent.ParseFreeFloor).
type floorFlag struct {
	floor  *agent.FreeFloor
	inodes bool
}

func (f *floorFlag) String() string {
	if f.floor == nil {
		return ""
	}
	return f.floor.String()
}

func (f *floorFlag) Set(s string) error {
	floor, err := agent.ParseFreeFloor(s, f.inodes)
	if err != nil {
		return err
	}
	*f.floor = floor
	return nil
}

// mustFloor is a default floor.
func mustFloor(s string, inodes bool) agent.FreeFloor {
	floor, err := agent.ParseFreeFloor(s, inodes)
	if err != nil {
		panic(err)
	}
	return floor
}
