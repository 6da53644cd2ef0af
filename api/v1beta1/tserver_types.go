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
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// SubType says which kind of program a TServer runs.
// +kubebuilder:validation:Enum=tars;normal
type SubType string

const (
	// SubTypeTars is a Tars-protocol server; its endpoints are declared in spec.tars.servants.
	SubTypeTars SubType = "tars"
	// SubTypeNormal is any other program; its endpoints are declared in spec.normal.ports.
	SubTypeNormal SubType = "normal"
)

// TServerSpec is what a Tars service declares: who it is, what it listens on, which release runs,
// and how its pods are laid out on Kubernetes.
// +kubebuilder:validation:XValidation:rule="self.subType != 'tars' || has(self.tars)",message="required when subType is tars",fieldPath=".tars"
// +kubebuilder:validation:XValidation:rule="self.subType != 'normal' || has(self.normal)",message="required when subType is normal",fieldPath=".normal"
type TServerSpec struct {
	// App is the Tars application the server belongs to, e.g. "tars".
	// Together with server it names the TServer: metadata.name must be lower(app)-lower(server).
	// Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z][0-9A-Za-z]*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="app is immutable"
	App string `json:"app"`

	// Server is the server's name within its application, e.g. "tarslog". Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z][0-9A-Za-z]*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="server is immutable"
	Server string `json:"server"`

	// SubType is "tars" for a Tars-protocol server (endpoints in spec.tars) or "normal" for any
	// other program (endpoints in spec.normal). Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="subType is immutable"
	SubType SubType `json:"subType"`

	// Tars declares the servants of a Tars-protocol server; used when subType is "tars".
	// +optional
	Tars *TServerTars `json:"tars,omitempty"`

	// Normal declares the ports of a non-Tars program; used when subType is "normal".
	// +optional
	Normal *TServerNormal `json:"normal,omitempty"`

	// Release is the build that runs. Without a release the server has no pods.
	// +optional
	Release *TServerRelease `json:"release,omitempty"`

	// K8S says how the server runs on Kubernetes: replicas, environment, host networking,
	// placement, resources and volumes, including node-local volumes (tLocalVolume).
	// +kubebuilder:default={}
	// +optional
	K8S TServerK8S `json:"k8s"`
}

// TServerTars holds the endpoints of a Tars-protocol server.
type TServerTars struct {
	// Servants are the Tars objects the server serves, one port each.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Servants []TServerServant `json:"servants,omitempty"`
}

// TServerNormal holds the endpoints of a program that does not speak the Tars protocol.
type TServerNormal struct {
	// Ports are the ports the program listens on.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Ports []TServerPort `json:"ports,omitempty"`
}

// TServerServant is one Tars object of a server and the port it listens on.
type TServerServant struct {
	// Name of the servant, e.g. "LogObj". Unique within the server, ignoring case.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z][0-9A-Za-z]*$`
	Name string `json:"name"`

	// Port the servant listens on inside the pod. Unique within the server.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// IsTcp is true for TCP, false for UDP.
	// +kubebuilder:default=true
	// +optional
	IsTcp bool `json:"isTcp"` //nolint:revive,staticcheck // the field name is the upstream API's

	// IsTars is true when the servant speaks the Tars protocol. Passed to the Tars framework;
	// kept for compatibility with TarsK8S resources.
	// +kubebuilder:default=true
	// +optional
	IsTars bool `json:"isTars"`

	// Thread is the number of servant threads. Passed to the Tars framework.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Thread int32 `json:"thread,omitempty"`

	// Connection is the maximum number of connections. Passed to the Tars framework.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Connection int32 `json:"connection,omitempty"`

	// Capacity is the request queue capacity. Passed to the Tars framework.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Capacity int32 `json:"capacity,omitempty"`

	// Timeout is the request queue timeout in milliseconds. Passed to the Tars framework.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Timeout int32 `json:"timeout,omitempty"`
}

// TServerPort is one port of a program that does not speak the Tars protocol.
type TServerPort struct {
	// Name of the port, e.g. "http". Unique within the server, ignoring case.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[A-Za-z][0-9A-Za-z]*$`
	Name string `json:"name"`

	// Port the program listens on inside the pod. Unique within the server.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`

	// IsTcp is true for TCP, false for UDP.
	// +kubebuilder:default=true
	// +optional
	IsTcp bool `json:"isTcp"` //nolint:revive,staticcheck // the field name is the upstream API's
}

// TServerRelease is the build a server runs.
type TServerRelease struct {
	// ID identifies the release, e.g. "v1".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ID string `json:"id"`

	// Image is the container image of the release.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Image string `json:"image"`

	// Secret names the image pull secret (in the TServer's namespace), if the registry needs one.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Secret string `json:"secret,omitempty"`
}

// TServerK8S says how a server runs on Kubernetes.
type TServerK8S struct {
	// Replicas is the number of pods. Zero stops the server; with no release there are no pods.
	// At most 5000, the most nodes a Kubernetes cluster is meant to have: each replica of a
	// server with node-local volumes or host networking needs a node of its own, and the cap
	// keeps a mistyped `kubectl scale` (which bypasses the admission webhook, not this schema)
	// from asking for billions of pods. A TServer stored with more before the cap keeps its
	// count through updates that leave it unchanged.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5000
	// +kubebuilder:default=1
	// +optional
	Replicas int32 `json:"replicas"`

	// ServiceAccount the pods run as. Empty means the namespace's default.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	ServiceAccount string `json:"serviceAccount,omitempty"`

	// Env sets environment variables in the server's container.
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// EnvFrom fills environment variables from ConfigMaps or Secrets.
	// +optional
	EnvFrom []corev1.EnvFromSource `json:"envFrom,omitempty"`

	// Command overrides the image's entrypoint.
	// +optional
	Command []string `json:"command,omitempty"`

	// Args overrides the image's arguments.
	// +optional
	Args []string `json:"args,omitempty"`

	// HostIPC runs the pods in the node's IPC namespace. Such a server is pinned to the node it
	// first runs on (a "delay-bind" volume claim), like a server with node-local volumes.
	// +optional
	HostIPC bool `json:"hostIPC,omitempty"`

	// HostNetwork runs the pods in the node's network namespace. Such a server is pinned to the
	// node it first runs on (a "delay-bind" volume claim).
	// +optional
	HostNetwork bool `json:"hostNetwork,omitempty"`

	// HostPorts exposes servants or ports on the node's own address. Such a server is pinned to
	// the node it first runs on (a "delay-bind" volume claim).
	// +listType=map
	// +listMapKey=nameRef
	// +kubebuilder:validation:MaxItems=64
	// +optional
	HostPorts []TK8SHostPort `json:"hostPorts,omitempty"`

	// NodeSelector restricts the nodes the pods may run on (all requirements must hold).
	// +optional
	NodeSelector []corev1.NodeSelectorRequirement `json:"nodeSelector,omitempty"`

	// NotStacked, when true, runs at most one pod of this server per node.
	// +optional
	NotStacked bool `json:"notStacked,omitempty"`

	// NodeLossPolicy says what happens to a replica held by its node-local volumes to a node
	// that is gone: its Node object deleted for longer than the manager's --node-loss-grace, or
	// tainted node.kubernetes.io/out-of-service (non-graceful node shutdown) while not Ready.
	// Reprovision (the default): the manager deletes the replica's volume objects and claims on
	// that node, and its pod, so that it starts on another node with new, empty volumes; the old
	// data stays in its directories on the lost node's disk. Wait: the replica waits for its node
	// to come back, or for an administrator to delete its claims; choose it for a server whose
	// data must never be replaced by empty volumes without a person deciding. A node that is
	// only NotReady frees no replica (it may still run the old pod), and a replica held by its
	// delay-bind claim alone (host networking, no data) is freed whatever the policy.
	// +kubebuilder:validation:Enum=Reprovision;Wait
	// +kubebuilder:default=Reprovision
	// +optional
	NodeLossPolicy NodeLossPolicy `json:"nodeLossPolicy,omitempty"`

	// PodManagementPolicy is the StatefulSet's: Parallel starts and stops pods together,
	// OrderedReady one at a time.
	// +kubebuilder:validation:Enum=Parallel;OrderedReady
	// +kubebuilder:default=Parallel
	// +optional
	PodManagementPolicy appsv1.PodManagementPolicyType `json:"podManagementPolicy,omitempty"`

	// UpdateStrategy is the StatefulSet's update strategy. The default is a rolling update.
	// +optional
	UpdateStrategy appsv1.StatefulSetUpdateStrategy `json:"updateStrategy,omitempty"`

	// Resources are the server container's compute resource requests and limits.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// ImagePullPolicy of the server's container.
	// +kubebuilder:validation:Enum=Always;Never;IfNotPresent
	// +kubebuilder:default=IfNotPresent
	// +optional
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// ReadinessGates are extra pod condition types that must be true for a pod to be ready.
	// +listType=set
	// +optional
	ReadinessGates []string `json:"readinessGates,omitempty"`

	// Mounts are the server's volumes and where they are mounted in its container. A mount with
	// source tLocalVolume gets a directory on the local disk of the node the pod runs on, and
	// the pod stays on that node.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=64
	// +optional
	Mounts []TK8SMount `json:"mounts,omitempty"`
}

// NodeLossPolicy says whether a replica whose node is gone is started elsewhere with new, empty
// node-local volumes (Reprovision) or waits for its node (Wait).
type NodeLossPolicy string

const (
	// NodeLossReprovision frees a replica from a node that is gone: it starts on another node
	// with new, empty volumes.
	NodeLossReprovision NodeLossPolicy = "Reprovision"
	// NodeLossWait keeps a replica waiting for its node to come back, or for an administrator.
	NodeLossWait NodeLossPolicy = "Wait"
)

// TK8SHostPort exposes one servant or port on the node's own address.
type TK8SHostPort struct {
	// NameRef names a servant (spec.tars.servants) or port (spec.normal.ports) of this server.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	NameRef string `json:"nameRef"`

	// Port on the node. Unique within the server.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
}

// TK8SMount is one volume of a server and where its container sees it.
type TK8SMount struct {
	// Name of the volume: a DNS-1123 label, unique within the server. For a tLocalVolume it is
	// also the volume claim template's name and the last element of the directory on the node.
	// "delay-bind" is reserved.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self != 'delay-bind'",message="delay-bind is reserved for the claim that pins host-network servers to their node"
	Name string `json:"name"`

	// MountPath is the absolute path in the container where the volume appears.
	// +kubebuilder:validation:MinLength=1
	MountPath string `json:"mountPath"`

	// ReadOnly mounts the volume read-only.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`

	// SubPath mounts only this relative path inside the volume.
	// +optional
	SubPath string `json:"subPath,omitempty"`

	// SubPathExpr is like subPath, with $(VAR) references expanded from the container's
	// environment. Mutually exclusive with subPath.
	// +optional
	SubPathExpr string `json:"subPathExpr,omitempty"`

	// MountPropagation is how mounts propagate between host and container.
	// +kubebuilder:validation:Enum=None;HostToContainer;Bidirectional
	// +optional
	MountPropagation *corev1.MountPropagationMode `json:"mountPropagation,omitempty"`

	// Source is where the volume comes from: exactly one of its fields.
	Source TK8SMountSource `json:"source"`
}

// TK8SMountSource is where a volume comes from. Exactly one field must be set.
// +kubebuilder:validation:XValidation:rule="[has(self.tLocalVolume), has(self.hostPath), has(self.emptyDir), has(self.secret), has(self.configMap), has(self.downwardAPI), has(self.persistentVolumeClaim), has(self.persistentVolumeClaimTemplate)].filter(x, x).size() == 1",message="exactly one volume source must be set"
type TK8SMountSource struct {
	// TLocalVolume is a directory on the local disk of the node the pod runs on,
	// <hostRoot>/<namespace>/<app>.<server>/<mount name>, created with this owner and mode.
	// The pod stays on that node for as long as the volume exists.
	// +optional
	TLocalVolume *TLocalVolume `json:"tLocalVolume,omitempty"`

	// HostPath mounts a path of the node directly.
	// +optional
	HostPath *corev1.HostPathVolumeSource `json:"hostPath,omitempty"`

	// EmptyDir is a scratch directory that lives as long as the pod.
	// +optional
	EmptyDir *corev1.EmptyDirVolumeSource `json:"emptyDir,omitempty"`

	// Secret mounts the keys of a Secret as files.
	// +optional
	Secret *corev1.SecretVolumeSource `json:"secret,omitempty"`

	// ConfigMap mounts the keys of a ConfigMap as files.
	// +optional
	ConfigMap *corev1.ConfigMapVolumeSource `json:"configMap,omitempty"`

	// DownwardAPI mounts pod metadata as files.
	// +optional
	DownwardAPI *corev1.DownwardAPIVolumeSource `json:"downwardAPI,omitempty"`

	// PersistentVolumeClaim mounts an existing claim, shared by all pods.
	// +optional
	PersistentVolumeClaim *corev1.PersistentVolumeClaimVolumeSource `json:"persistentVolumeClaim,omitempty"`

	// PersistentVolumeClaimTemplate gives every pod a claim of its own, made from this template
	// (its metadata.name is replaced by the mount's name).
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	PersistentVolumeClaimTemplate *corev1.PersistentVolumeClaim `json:"persistentVolumeClaimTemplate,omitempty"`
}

// TLocalVolume asks for a node-local directory owned by uid:gid with the given mode.
// Omitted or empty fields are defaulted to uid "0", gid "0", mode "755".
type TLocalVolume struct {
	// UID owns the directory: a decimal user id from 0 to 999999, without leading zeros.
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]{0,5})$`
	// +kubebuilder:default="0"
	// +optional
	UID string `json:"uid,omitempty"`

	// GID is the directory's group: a decimal group id from 0 to 999999, without leading zeros.
	// +kubebuilder:validation:Pattern=`^(0|[1-9][0-9]{0,5})$`
	// +kubebuilder:default="0"
	// +optional
	GID string `json:"gid,omitempty"`

	// Mode is the directory's permission bits in octal, three digits each from 1 to 7 with an
	// optional leading 0, e.g. "755" or "0755". A digit 0 (as in "750") is rejected, as upstream.
	// +kubebuilder:validation:Pattern=`^0?[1-7]{3,3}$`
	// +kubebuilder:default="755"
	// +optional
	Mode string `json:"mode,omitempty"`
}

// TServerStatus is what the controller last observed of the server's StatefulSet and claims.
type TServerStatus struct {
	// Replicas is the number of pods the StatefulSet has.
	// +optional
	Replicas int32 `json:"replicas"`

	// ReadyReplicas is the number of pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`

	// CurrentReplicas is the number of pods running the current revision.
	// +optional
	CurrentReplicas int32 `json:"currentReplicas"`

	// Selector is the label selector of the server's pods, for the scale subresource.
	// +optional
	Selector string `json:"selector,omitempty"`

	// ObservedGeneration is the generation of the spec this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// VolumeNodes says where each replica's node-local volumes are (or are being made): the
	// node of replica 0, 1, ... in order, comma-separated; "-" for a replica with none yet,
	// nodes joined by "+" for one whose volumes are on several. Past the first 50 replicas it
	// counts the rest. How much the volumes hold is in the node agents' metrics, not here.
	// +optional
	VolumeNodes string `json:"volumeNodes,omitempty"`

	// Conditions: Ready (all replicas ready), VolumesBound (every claim bound) and
	// VolumesHealthy (no node agent reports a bound volume's directory missing).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.k8s.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=ts
// +kubebuilder:printcolumn:name="App",type=string,JSONPath=`.spec.app`
// +kubebuilder:printcolumn:name="Server",type=string,JSONPath=`.spec.server`
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.k8s.replicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Volume Nodes",type=string,JSONPath=`.status.volumeNodes`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// TServer is a Tars service on Kubernetes. The operator runs it as a StatefulSet; each
// tLocalVolume mount becomes a directory on the local disk of the pod's node, and the pod stays
// on that node.
type TServer struct {
	metav1.TypeMeta `json:",inline"`

	// metadata is a standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitzero"`

	// spec is what the service declares.
	// +required
	Spec TServerSpec `json:"spec"`

	// status is what the controller last observed.
	// +optional
	Status TServerStatus `json:"status,omitzero"`
}

// +kubebuilder:object:root=true

// TServerList contains a list of TServer.
type TServerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitzero"`
	Items           []TServer `json:"items"`
}

func init() {
	SchemeBuilder.Register(func(s *runtime.Scheme) error {
		s.AddKnownTypes(SchemeGroupVersion, &TServer{}, &TServerList{})
		return nil
	})
}
