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

import (
	"fmt"
	"hash/fnv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Labels, annotations and names shared by the webhooks, the controller and the node agent.
// Their values are TarsK8S's, so that clusters moving from it keep their volumes.
const (
	// LabelServerApp carries spec.app on pods, claims and volumes.
	LabelServerApp = "tars.io/ServerApp"
	// LabelServerName carries spec.server on pods, claims and volumes.
	LabelServerName = "tars.io/ServerName"
	// LabelLocalVolume carries the mount name on node-local claims and volumes.
	LabelLocalVolume = "tars.io/LocalVolume"
	// LabelSupportLocalVolume marks the nodes where node-local volumes may be provisioned.
	LabelSupportLocalVolume = "tars.io/SupportLocalVolume"
	// LabelSelectedNode mirrors a node-local claim's volume.kubernetes.io/selected-node
	// annotation, the node the scheduler picked for the claim's pod, so that each node agent can
	// watch only the claims of its node (annotations cannot select). A MutatingAdmissionPolicy
	// sets it in the scheduler's own write, and the manager where that policy is missing. It is
	// absent where the node name is not a label value (SelectedNodeLabelValue).
	LabelSelectedNode = "tars.io/SelectedNode"
	// LabelDiskFull is set by a node's agent while the filesystem of its host root has less free
	// space or inodes than the agent keeps (its --min-free-space and --min-free-inodes); the value
	// says which: DiskFullSpace, DiskFullInodes or DiskFullSpaceAndInodes. No new volume is made on
	// such a node, and the pods of servers with node-local volumes prefer the other nodes; volumes
	// made already stay, and their pods come back to them. The agent removes it once there is room
	// again: it is the agent's, not an administrator's (tars.io/SupportLocalVolume: "false" keeps
	// new volumes off a node for good).
	LabelDiskFull = "tars.io/DiskFull"
	// Values of LabelDiskFull.
	DiskFullSpace          = "space"
	DiskFullInodes         = "inodes"
	DiskFullSpaceAndInodes = "space-and-inodes"

	// AnnotationLocalVolumeUID is the owner uid a claim's directory must have.
	AnnotationLocalVolumeUID = "tars.io/LocalVolumeUID"
	// AnnotationLocalVolumeGID is the group id a claim's directory must have.
	AnnotationLocalVolumeGID = "tars.io/LocalVolumeGID"
	// AnnotationLocalVolumeMode is the octal permission bits a claim's directory must have.
	AnnotationLocalVolumeMode = "tars.io/LocalVolumeMode"

	// StorageClassName is the class of every node-local claim and volume.
	StorageClassName = "t-storage-class"
	// Provisioner is the provisioner of the StorageClass the operator ships: the scheduler picks
	// a pod's node first (volume.kubernetes.io/selected-node on its claims), and the agent of
	// that node provisions one volume for each claim.
	Provisioner = "tars.io/local-volume"
	// NoProvisioner is the provisioner of TarsK8S's StorageClass, whose agents made a volume for
	// each pending claim group on every eligible node beforehand. A class's provisioner is
	// immutable: such a class must be deleted and made anew with Provisioner.
	NoProvisioner = "kubernetes.io/no-provisioner"
	// DelayBindVolumeName is the claim that pins a host-network, host-IPC or host-port server to
	// its node. It stores nothing, so no mount may take its name.
	DelayBindVolumeName = "delay-bind"

	// AnnotationVolumeProblem is set by the node agent on a claim whose bound volume it cannot
	// keep (its directory is missing: a data disk not mounted, or replaced); the value says what
	// and on which node. The agent removes it once the volume is sound again; the controller
	// reports it in the TServer's VolumesHealthy condition, naming the replica.
	AnnotationVolumeProblem = "tars.io/VolumeProblem"

	// AnnotationProvisioningRefused is set by a node agent on a claim it hands back to the
	// scheduler: the value names the node and why it could not make the claim's volume there
	// (its disk full, another replica's volume in the way, ...). The controller shows it in the
	// TServer's VolumesBound condition while the claim is pending; the agent that makes the
	// claim's volume removes it.
	AnnotationProvisioningRefused = "tars.io/ProvisioningRefused"

	// AnnotationFreedFromNode is set by the manager on a node-local volume it deletes because its
	// node is gone (its reclaim policy made Retain first): the value is the node, on whose disk
	// the volume's directory stays.
	AnnotationFreedFromNode = "tars.io/FreedFromNode"

	// DefaultHostRoot is the host directory node-local volumes live under, as TarsK8S put them.
	DefaultHostRoot = "/usr/local/app/tars/host-mount"

	// MaxReplicas is the most replicas a TServer may have (the schema's maximum of
	// spec.k8s.replicas): the most nodes a Kubernetes cluster is meant to have, since each
	// replica of a server with node-local volumes needs a node of its own.
	MaxReplicas = 5000

	// DefaultLocalVolumeUID is the uid of a tLocalVolume that gives none.
	DefaultLocalVolumeUID = "0"
	// DefaultLocalVolumeGID is the gid of a tLocalVolume that gives none.
	DefaultLocalVolumeGID = "0"
	// DefaultLocalVolumeMode is the mode of a tLocalVolume that gives none.
	DefaultLocalVolumeMode = "755"
)

// Patterns of the TServer fields that the validating webhook checks; the CRD schema's markers
// carry the same strings (a test keeps them equal).
const (
	// IdentifierPattern is what spec.app, spec.server and servant and port names must match.
	IdentifierPattern = `^[A-Za-z][0-9A-Za-z]*$`
	// LocalVolumeIDPattern is what a tLocalVolume's uid and gid must match.
	LocalVolumeIDPattern = `^(0|[1-9][0-9]{0,5})$`
	// LocalVolumeModePattern is what a tLocalVolume's mode must match: three octal digits, each
	// 1 to 7, with an optional leading 0 (the seed's pattern, enforced on purpose).
	LocalVolumeModePattern = `^0?[1-7]{3,3}$`
)

// SelectedNodeLabelValue is the value of LabelSelectedNode for a node, or "" when the node's
// name is not a label value (a name longer than 63 characters): such a node's agent watches
// every node-local claim instead.
func SelectedNodeLabelValue(node string) string {
	if len(validation.IsValidLabelValue(node)) > 0 {
		return ""
	}
	return node
}

// ResourceName is the name a TServer of this app and server must have, and the name of its
// StatefulSet and Service: lower(app)-lower(server).
func ResourceName(app, server string) string {
	return strings.ToLower(app) + "-" + strings.ToLower(server)
}

// LocalVolumeName is the name of the node-local volume of a server's mount on a node, as
// TarsK8S names it so that existing clusters' volumes are recognised:
// <namespace>-<volume>-<lower(app)>-<lower(server)>-<hex(fnv32a(node + storage class))>.
func LocalVolumeName(namespace, volume, app, server, nodeName, storageClass string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(nodeName + storageClass))
	return fmt.Sprintf("%s-%s-%s-%s-%x", namespace, volume, strings.ToLower(app), strings.ToLower(server), h.Sum32())
}

// LocalVolumeNamespace reads the namespace of a node-local volume back from its name
// (LocalVolumeName) and its app, server and volume labels: volumes are cluster-scoped and
// record it nowhere else. It says false for a name that is not of that form.
func LocalVolumeNamespace(name string, labels map[string]string) (string, bool) {
	app, server, volume := labels[LabelServerApp], labels[LabelServerName], labels[LabelLocalVolume]
	i := strings.LastIndexByte(name, '-') // before the node's hash
	if app == "" || server == "" || volume == "" || i < 0 {
		return "", false
	}
	ns, ok := strings.CutSuffix(name[:i], "-"+volume+"-"+strings.ToLower(app)+"-"+strings.ToLower(server))
	if !ok || ns == "" {
		return "", false
	}
	return ns, true
}

// Endpoint is a servant (subType tars) or port (subType normal) of a server.
// +kubebuilder:object:generate=false
type Endpoint struct {
	Name  string
	Port  int32
	IsTCP bool
}

// Endpoints lists the servants or ports of the server's subType, in order.
func (s *TServerSpec) Endpoints() []Endpoint {
	var eps []Endpoint
	switch {
	case s.SubType == SubTypeTars && s.Tars != nil:
		for _, sv := range s.Tars.Servants {
			eps = append(eps, Endpoint{Name: sv.Name, Port: sv.Port, IsTCP: sv.IsTcp})
		}
	case s.SubType == SubTypeNormal && s.Normal != nil:
		for _, p := range s.Normal.Ports {
			eps = append(eps, Endpoint{Name: p.Name, Port: p.Port, IsTCP: p.IsTcp})
		}
	}
	return eps
}

// WithDefaults is lv with a missing or empty uid, gid or mode replaced by "0", "0" and "755".
func (lv TLocalVolume) WithDefaults() TLocalVolume {
	if lv.UID == "" {
		lv.UID = DefaultLocalVolumeUID
	}
	if lv.GID == "" {
		lv.GID = DefaultLocalVolumeGID
	}
	if lv.Mode == "" {
		lv.Mode = DefaultLocalVolumeMode
	}
	return lv
}
