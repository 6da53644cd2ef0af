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
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Reasons of the errors counter.
const (
	reasonCollision          = "name_collision"
	reasonInvalidAnnotations = "invalid_annotations"
	reasonDirectory          = "directory"
	reasonCreateVolume       = "create_volume"
	reasonCleanup            = "cleanup"
	reasonRetained           = "retained_volume_in_the_way"
	reasonUnsafePath         = "unsafe_path"
	reasonMissingDirectory   = "missing_directory"
	reasonOrphanScan         = "orphan_scan"
	reasonDiskFull           = "disk_full"
	reasonDiskCheck          = "disk_check"
)

// Label names of the agent's metrics: the kubelet's volume statistics' where they have them.
const (
	labelNamespace = "namespace"
	labelClaim     = "persistentvolumeclaim"
	labelVolume    = "persistentvolume"
	labelNode      = "node"
)

var (
	volumesProvisioned = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tserver_agent_volumes_provisioned_total",
		Help: "PersistentVolumes this agent created for pending claims.",
	})
	volumesDeleted = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tserver_agent_volumes_deleted_total",
		Help: "Released PersistentVolumes with reclaim policy Delete whose directory and volume this agent removed.",
	})
	volumesGarbageCollected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tserver_agent_volumes_garbage_collected_total",
		Help: "Unbound PersistentVolumes this agent deleted after the grace period because no claim waited for them.",
	})
	cleanupsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tserver_agent_cleanups_refused_total",
		Help: "Times the directory of a released volume was kept because the agent could not prove it unused and its own.",
	})
	volumeDirectoryMissing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_agent_volume_directory_missing",
		Help: "1 for each bound volume of this node whose directory is missing (a data disk not mounted, say); " +
			"the agent does not recreate it empty.",
	}, []string{labelVolume, labelNamespace, labelClaim})
	ownershipRepairs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tserver_agent_ownership_repairs_total",
		Help: "Times the owner, group or mode of a bound volume's directory was set back to its claim's.",
	})
	agentErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tserver_agent_errors_total",
		Help: "Errors by reason: name_collision, invalid_annotations, directory, create_volume, cleanup, " +
			"retained_volume_in_the_way, unsafe_path, missing_directory, orphan_scan, disk_full (a claim refused: the " +
			"disk is full), disk_check (the host root's free space unreadable, or the node's mark not written).",
	}, []string{"reason"})
	orphanedDirectories = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tserver_agent_orphaned_directories",
		Help: "Directories below this node's host root, where volume directories are, that no PersistentVolume uses; " +
			"the agent never removes them.",
	})
	orphanedDirectory = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_agent_orphaned_directory",
		Help: "1 for each directory below this node's host root, by host path, that no PersistentVolume uses " +
			"(tserver_agent_orphaned_directories counts them).",
	}, []string{"path"})
	orphanedDirectoryBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_agent_orphaned_directory_bytes",
		Help: "Bytes on disk that an orphaned directory below this node's host root holds (as du -x counts them), " +
			"by host path, measured at each orphan scan.",
	}, []string{"path"})
)

// The kubelet's volume statistics report the whole filesystem for a local volume; these report
// the volume's own directory, with the kubelet's labels and the server's.
var (
	volumeLabels    = []string{labelNamespace, labelClaim, labelVolume, "tserver", "volume", labelNode}
	volumeUsedBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_agent_volume_used_bytes",
		Help: "Bytes on disk that the directory of a bound node-local volume holds (as du -x counts them), " +
			"measured in the last complete pass.",
	}, volumeLabels)
	volumeUsedInodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_agent_volume_used_inodes",
		Help: "Inodes that the directory of a bound node-local volume holds, measured in the last complete pass.",
	}, volumeLabels)
	hostRootBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_agent_host_root_bytes",
		Help: "Size (kind=capacity) and free space for unprivileged users (kind=available) of the filesystem " +
			"of this node's host root.",
	}, []string{labelNode, "kind"})
	hostRootInodes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_agent_host_root_inodes",
		Help: "Inodes (kind=capacity) and free inodes (kind=available) of the filesystem of this node's host root.",
	}, []string{labelNode, "kind"})
	diskFull = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "tserver_agent_disk_full",
		Help: "1 while this node is marked full (label tars.io/DiskFull) for lack of free space (resource=space) " +
			"or inodes (resource=inodes) on its host root's filesystem: no new volume is made on it.",
	}, []string{labelNode, "resource"})
	usagePassSeconds = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "tserver_agent_usage_pass_seconds",
		Help: "How long the last complete pass over this node's bound volumes took.",
	})
)

func init() {
	// Every reason has a series from the start, so that increase() sees a reason's first error.
	for _, reason := range []string{reasonCollision, reasonInvalidAnnotations, reasonDirectory, reasonCreateVolume,
		reasonCleanup, reasonRetained, reasonUnsafePath, reasonMissingDirectory, reasonOrphanScan, reasonDiskFull,
		reasonDiskCheck} {
		agentErrors.WithLabelValues(reason)
	}
	ctrlmetrics.Registry.MustRegister(volumesProvisioned, volumesDeleted, volumesGarbageCollected, cleanupsRefused,
		volumeDirectoryMissing, ownershipRepairs, agentErrors, orphanedDirectories, orphanedDirectory,
		volumeUsedBytes, volumeUsedInodes, hostRootBytes, hostRootInodes, usagePassSeconds, orphanedDirectoryBytes, diskFull)
}
