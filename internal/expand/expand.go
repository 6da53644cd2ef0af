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

// Package expand is what a TServer expands into: its StatefulSet, headless Service and claim
// templates. The controller applies them; `make bench` applies the same objects by hand for its
// measure of Kubernetes alone.
package expand

import (
	"maps"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

const (
	// placeholderImage fills the container of a TServer without a release: a StatefulSet needs an
	// image, and with zero replicas it is never pulled.
	placeholderImage = "registry.k8s.io/pause:3.10"

	// localVolumeRequest is the storage a node-local claim asks for: a placeholder, since a local
	// directory has no size limit.
	localVolumeRequest = "1G"
)

// PodLabels are the labels of a TServer's pods; they also select them.
func PodLabels(ts *tarsv1beta1.TServer) map[string]string {
	return map[string]string{
		tarsv1beta1.LabelServerApp:  ts.Spec.App,
		tarsv1beta1.LabelServerName: ts.Spec.Server,
	}
}

// NeedsDelayBind says whether a TServer's pods must be pinned to their node although they may
// have no local volume: host IPC, host network and host ports tie a server to its node.
func NeedsDelayBind(ts *tarsv1beta1.TServer) bool {
	k := &ts.Spec.K8S
	return k.HostIPC || k.HostNetwork || len(k.HostPorts) > 0
}

// StatefulSet is the StatefulSet a TServer should have, as yet without an owner.
func StatefulSet(ts *tarsv1beta1.TServer) *appsv1.StatefulSet {
	k := &ts.Spec.K8S
	replicas := k.Replicas
	if ts.Spec.Release == nil {
		replicas = 0
	}
	policy := k.PodManagementPolicy
	if policy == "" {
		policy = appsv1.ParallelPodManagement
	}
	strategy := *k.UpdateStrategy.DeepCopy()
	if strategy.Type == "" {
		strategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ts.Name,
			Namespace: ts.Namespace,
			Labels:    PodLabels(ts),
		},
		Spec: appsv1.StatefulSetSpec{
			Replicas:             new(replicas),
			Selector:             &metav1.LabelSelector{MatchLabels: PodLabels(ts)},
			ServiceName:          ts.Name,
			PodManagementPolicy:  policy,
			UpdateStrategy:       strategy,
			Template:             buildPodTemplate(ts),
			VolumeClaimTemplates: ClaimTemplates(ts),
			// Claims hold data on node disks: neither scaling down nor deleting the TServer
			// removes them. The controller deletes only the claims of volumes removed from it.
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
		},
	}
}

// buildPodTemplate is the pod template of a TServer's StatefulSet.
func buildPodTemplate(ts *tarsv1beta1.TServer) corev1.PodTemplateSpec {
	k := &ts.Spec.K8S
	image, pullSecrets := placeholderImage, []corev1.LocalObjectReference(nil)
	if r := ts.Spec.Release; r != nil {
		image = r.Image
		if r.Secret != "" {
			pullSecrets = []corev1.LocalObjectReference{{Name: r.Secret}}
		}
	}
	volumes, mounts := buildVolumes(ts)
	container := corev1.Container{
		Name:            ts.Name,
		Image:           image,
		ImagePullPolicy: k.ImagePullPolicy,
		Command:         k.Command,
		Args:            k.Args,
		Env:             k.Env,
		EnvFrom:         k.EnvFrom,
		Ports:           buildContainerPorts(ts),
		Resources:       *k.Resources.DeepCopy(),
		VolumeMounts:    mounts,
	}
	if container.ImagePullPolicy == "" {
		container.ImagePullPolicy = corev1.PullIfNotPresent
	}
	spec := corev1.PodSpec{
		Containers:         []corev1.Container{container},
		Volumes:            volumes,
		ImagePullSecrets:   pullSecrets,
		ServiceAccountName: k.ServiceAccount,
		HostIPC:            k.HostIPC,
		HostNetwork:        k.HostNetwork,
		Affinity:           buildAffinity(ts),
		// Set, they replace the scheduler's default spreading (of the server's own pods, which
		// the anti-affinity keeps apart anyway).
		TopologySpreadConstraints: buildTopologySpread(ts),
	}
	if k.HostNetwork {
		spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	}
	for _, gate := range k.ReadinessGates {
		spec.ReadinessGates = append(spec.ReadinessGates,
			corev1.PodReadinessGate{ConditionType: corev1.PodConditionType(gate)})
	}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: PodLabels(ts)},
		Spec:       spec,
	}
}

// protocol is an endpoint's protocol.
func protocol(ep tarsv1beta1.Endpoint) corev1.Protocol {
	if ep.IsTCP {
		return corev1.ProtocolTCP
	}
	return corev1.ProtocolUDP
}

// buildContainerPorts gives every servant or port a container port, named after it in lower case
// where that is a valid port name (at most 15 characters), with the host port that exposes it.
func buildContainerPorts(ts *tarsv1beta1.TServer) []corev1.ContainerPort {
	eps := ts.Spec.Endpoints()
	ports := make([]corev1.ContainerPort, 0, len(eps))
	for _, ep := range eps {
		p := corev1.ContainerPort{ContainerPort: ep.Port, Protocol: protocol(ep)}
		if name := strings.ToLower(ep.Name); len(validation.IsValidPortName(name)) == 0 {
			p.Name = name
		}
		for _, hp := range ts.Spec.K8S.HostPorts {
			if hp.NameRef == ep.Name {
				p.HostPort = hp.Port
			}
		}
		ports = append(ports, p)
	}
	return ports
}

// buildAffinity turns nodeSelector into required node affinity, and keeps the server's own pods
// on different nodes when notStacked asks for it or the server has node-local volumes: a node
// holds one volume of each of a server's tLocalVolumes (and one delay-bind volume), at one path,
// so two replicas can never share a node. Pods with tLocalVolumes also require a node labelled
// tars.io/SupportLocalVolume (not "false"), the nodes where agents may provision them; pods with
// node-local volumes prefer nodes not labelled tars.io/DiskFull.
func buildAffinity(ts *tarsv1beta1.TServer) *corev1.Affinity {
	k := &ts.Spec.K8S
	nodeRequirements := slices.Clone(k.NodeSelector)
	if HasLocalVolume(ts) {
		nodeRequirements = append(nodeRequirements,
			corev1.NodeSelectorRequirement{Key: tarsv1beta1.LabelSupportLocalVolume, Operator: corev1.NodeSelectorOpExists},
			corev1.NodeSelectorRequirement{Key: tarsv1beta1.LabelSupportLocalVolume, Operator: corev1.NodeSelectorOpNotIn,
				Values: []string{"false"}})
	}
	spread := k.NotStacked || len(LocalClaimTemplateNames(ts)) > 0
	if len(nodeRequirements) == 0 && !spread {
		return nil
	}
	affinity := &corev1.Affinity{}
	if len(nodeRequirements) > 0 {
		affinity.NodeAffinity = &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: nodeRequirements}},
			},
		}
	}
	if spread && len(LocalClaimTemplateNames(ts)) > 0 {
		// A node whose agent marked its disk full makes no new volume: a new replica prefers the
		// others. Only prefers: a replica whose volumes are there must still go back to them.
		if affinity.NodeAffinity == nil {
			affinity.NodeAffinity = &corev1.NodeAffinity{}
		}
		affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = []corev1.PreferredSchedulingTerm{{
			Weight: 100,
			Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: tarsv1beta1.LabelDiskFull, Operator: corev1.NodeSelectorOpDoesNotExist,
			}}},
		}}
	}
	if spread {
		affinity.PodAntiAffinity = &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: PodLabels(ts)},
				TopologyKey:   corev1.LabelHostname,
			}},
		}
	}
	return affinity
}

// buildTopologySpread spreads the pods of servers with node-local volumes over the nodes, counting
// every Tars pod of the namespace: such a pod, and its data, stay on the node it first lands on.
// Left to its scoring, the scheduler breaks ties between nodes of equal free capacity the same way
// each time, and small pods (or none with requests) leave nodes tied for long: a rollout of many
// servers would pile them onto the first few nodes, for good, and those nodes' agents would
// provision the volumes of all of them. ScheduleAnyway: a preference, never a reason to wait.
func buildTopologySpread(ts *tarsv1beta1.TServer) []corev1.TopologySpreadConstraint {
	if len(LocalClaimTemplateNames(ts)) == 0 {
		return nil
	}
	return []corev1.TopologySpreadConstraint{{
		MaxSkew:           1,
		TopologyKey:       corev1.LabelHostname,
		WhenUnsatisfiable: corev1.ScheduleAnyway,
		LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: tarsv1beta1.LabelServerApp, Operator: metav1.LabelSelectorOpExists},
		}},
	}}
}

// HasLocalVolume says whether the server mounts a tLocalVolume (delay-bind is none).
func HasLocalVolume(ts *tarsv1beta1.TServer) bool {
	return slices.ContainsFunc(ts.Spec.K8S.Mounts, func(m tarsv1beta1.TK8SMount) bool {
		return m.Source.TLocalVolume != nil
	})
}

// LocalClaimTemplateNames names the server's node-local claim templates: its tLocalVolume
// mounts and delay-bind.
func LocalClaimTemplateNames(ts *tarsv1beta1.TServer) []string {
	var names []string
	for _, m := range ts.Spec.K8S.Mounts {
		if m.Source.TLocalVolume != nil {
			names = append(names, m.Name)
		}
	}
	if NeedsDelayBind(ts) {
		names = append(names, tarsv1beta1.DelayBindVolumeName)
	}
	return names
}

// buildVolumes returns the pod volumes and container mounts of a TServer's mounts. Mounts backed
// by a claim template (tLocalVolume, persistentVolumeClaimTemplate) need no pod volume: the
// StatefulSet adds one per claim template.
func buildVolumes(ts *tarsv1beta1.TServer) ([]corev1.Volume, []corev1.VolumeMount) {
	volumes := make([]corev1.Volume, 0, len(ts.Spec.K8S.Mounts))
	mounts := make([]corev1.VolumeMount, 0, len(ts.Spec.K8S.Mounts))
	for _, m := range ts.Spec.K8S.Mounts {
		mounts = append(mounts, corev1.VolumeMount{
			Name:             m.Name,
			MountPath:        m.MountPath,
			ReadOnly:         m.ReadOnly,
			SubPath:          m.SubPath,
			SubPathExpr:      m.SubPathExpr,
			MountPropagation: m.MountPropagation,
		})
		s := m.Source.DeepCopy()
		var source corev1.VolumeSource
		switch {
		case s.HostPath != nil:
			source.HostPath = s.HostPath
		case s.EmptyDir != nil:
			source.EmptyDir = s.EmptyDir
		case s.Secret != nil:
			source.Secret = s.Secret
		case s.ConfigMap != nil:
			source.ConfigMap = s.ConfigMap
		case s.DownwardAPI != nil:
			source.DownwardAPI = s.DownwardAPI
		case s.PersistentVolumeClaim != nil:
			source.PersistentVolumeClaim = s.PersistentVolumeClaim
		default: // tLocalVolume and persistentVolumeClaimTemplate: a claim template
			continue
		}
		volumes = append(volumes, corev1.Volume{Name: m.Name, VolumeSource: source})
	}
	return volumes, mounts
}

// ClaimTemplates is the StatefulSet's volumeClaimTemplates: one node-local claim per
// tLocalVolume mount, the user's claim templates as given, and the delay-bind claim when host
// IPC, host network or host ports pin the server to its node.
func ClaimTemplates(ts *tarsv1beta1.TServer) []corev1.PersistentVolumeClaim {
	var templates []corev1.PersistentVolumeClaim
	for _, m := range ts.Spec.K8S.Mounts {
		switch {
		case m.Source.TLocalVolume != nil:
			templates = append(templates, localClaimTemplate(ts, m.Name, LocalVolumeAnnotations(m.Source.TLocalVolume)))
		case m.Source.PersistentVolumeClaimTemplate != nil:
			pvc := m.Source.PersistentVolumeClaimTemplate.DeepCopy()
			pvc.ObjectMeta = metav1.ObjectMeta{
				Name:        m.Name,
				Labels:      pvc.Labels,
				Annotations: pvc.Annotations,
			}
			// The server's labels let the controller find the claims in its narrowed cache.
			if pvc.Labels == nil {
				pvc.Labels = map[string]string{}
			}
			maps.Copy(pvc.Labels, PodLabels(ts))
			pvc.Status = corev1.PersistentVolumeClaimStatus{}
			templates = append(templates, *pvc)
		}
	}
	if NeedsDelayBind(ts) {
		templates = append(templates, localClaimTemplate(ts, tarsv1beta1.DelayBindVolumeName, nil))
	}
	return templates
}

// LocalVolumeAnnotations tell the node agent the owner and mode of a claim's directory.
func LocalVolumeAnnotations(lv *tarsv1beta1.TLocalVolume) map[string]string {
	d := lv.WithDefaults()
	return map[string]string{
		tarsv1beta1.AnnotationLocalVolumeUID:  d.UID,
		tarsv1beta1.AnnotationLocalVolumeGID:  d.GID,
		tarsv1beta1.AnnotationLocalVolumeMode: d.Mode,
	}
}

// localVolumeLabels mark a node-local claim (and the volume the agent makes for it) as volume
// name of this server.
func localVolumeLabels(ts *tarsv1beta1.TServer, name string) map[string]string {
	labels := PodLabels(ts)
	labels[tarsv1beta1.LabelLocalVolume] = name
	return labels
}

// localClaimTemplate is a claim for a node-local volume, exactly as TarsK8S writes it.
func localClaimTemplate(ts *tarsv1beta1.TServer, name string,
	annotations map[string]string) corev1.PersistentVolumeClaim {
	return corev1.PersistentVolumeClaim{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      localVolumeLabels(ts, name),
			Annotations: annotations,
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(localVolumeRequest)},
			},
			Selector:         &metav1.LabelSelector{MatchLabels: localVolumeLabels(ts, name)},
			StorageClassName: ptr.To(tarsv1beta1.StorageClassName),
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
		},
	}
}

// Service is the headless Service that gives a TServer's pods their DNS names, as yet without an
// owner.
func Service(ts *tarsv1beta1.TServer) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:      ts.Name,
			Namespace: ts.Namespace,
			Labels:    PodLabels(ts),
		},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  PodLabels(ts),
		},
	}
	for _, ep := range ts.Spec.Endpoints() {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{
			Name:       strings.ToLower(ep.Name),
			Port:       ep.Port,
			TargetPort: intstr.FromInt32(ep.Port),
			Protocol:   protocol(ep),
		})
	}
	return svc
}

// ClaimTemplateNames are the names of a StatefulSet's claim templates, in order.
func ClaimTemplateNames(sts *appsv1.StatefulSet) []string {
	names := make([]string, 0, len(sts.Spec.VolumeClaimTemplates))
	for _, t := range sts.Spec.VolumeClaimTemplates {
		names = append(names, t.Name)
	}
	return names
}
