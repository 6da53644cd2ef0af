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

package v1beta1

// Condition types of a TServer's status.
const (
	// ConditionReady is true when every replica is ready.
	ConditionReady = "Ready"
	// ConditionVolumesBound is true when every claim of every replica is bound to a volume.
	ConditionVolumesBound = "VolumesBound"
	// ConditionVolumesHealthy is false while a node agent reports that the directory of a bound
	// volume of the server is missing (AnnotationVolumeProblem on its claim).
	ConditionVolumesHealthy = "VolumesHealthy"
	// ConditionNodesAvailable is false while a replica is held by its node-local volumes to a
	// node that is gone or not Ready.
	ConditionNodesAvailable = "NodesAvailable"
)

// Reasons of the Ready condition. The events that report a problem carry the same reason.
const (
	// ReasonAllReplicasReady: every replica the server asks for is ready (none without a release).
	ReasonAllReplicasReady = "AllReplicasReady"
	// ReasonReplicasNotReady: some replicas are not ready yet.
	ReasonReplicasNotReady = "ReplicasNotReady"
	// ReasonProgressing: the StatefulSet is being made or updated.
	ReasonProgressing = "Progressing"
	// ReasonRecreatingStatefulSet: the StatefulSet is being made again with new claim templates;
	// its pods keep running.
	ReasonRecreatingStatefulSet = "RecreatingStatefulSet"
	// ReasonConflict: a StatefulSet or Service of the server's name belongs to something else.
	ReasonConflict = "Conflict"
)

// Reasons of the VolumesBound condition.
const (
	// ReasonAllClaimsBound: every claim of every replica is bound.
	ReasonAllClaimsBound = "AllClaimsBound"
	// ReasonClaimsPending: some claims are not bound yet; the message names them, and the node
	// each waits on.
	ReasonClaimsPending = "ClaimsPending"
	// ReasonStorageClassNotProvisioning: node-local claims are pending and t-storage-class is
	// missing or is not the operator's (TarsK8S's, say): nothing will provision them.
	ReasonStorageClassNotProvisioning = "StorageClassNotProvisioning"
	// ReasonProvisioningRefused: node-local claims are pending, and a node agent handed some back
	// to the scheduler, saying why (its disk full, another replica's volume in the way, ...);
	// the message quotes it for each claim it names.
	ReasonProvisioningRefused = "ProvisioningRefused"
)

// Reasons of the VolumesHealthy condition.
const (
	// ReasonAllVolumesHealthy: no claim of the server carries a node agent's problem report.
	ReasonAllVolumesHealthy = "AllVolumesHealthy"
	// ReasonVolumeDirectoryMissing: a node agent found the directory of a bound volume missing.
	ReasonVolumeDirectoryMissing = "VolumeDirectoryMissing"
)

// Reasons of the NodesAvailable condition, also the reason label of the manager's node-loss
// metrics.
const (
	// ReasonAllNodesAvailable: no replica is held to a node that is gone or not Ready.
	ReasonAllNodesAvailable = "AllNodesAvailable"
	// ReasonNodeNotReady: a replica is held to a node that is not Ready; nothing is freed.
	ReasonNodeNotReady = "NodeNotReady"
	// ReasonNodeOutOfServiceButReady: a replica's node is tainted out-of-service but Ready, which
	// contradicts the taint; nothing is freed while it is Ready.
	ReasonNodeOutOfServiceButReady = "NodeOutOfServiceButReady"
	// ReasonNodeDeleted: a replica's Node object is deleted; it is freed once the manager's
	// --node-loss-grace has passed.
	ReasonNodeDeleted = "NodeDeleted"
	// ReasonNodeLossPolicyWait: a replica's node is gone, and the server's nodeLossPolicy is
	// Wait.
	ReasonNodeLossPolicyWait = "NodeLossPolicyWait"
	// ReasonNodeOutOfService: a replica was freed from a node tainted out-of-service.
	ReasonNodeOutOfService = "NodeOutOfService"
)
