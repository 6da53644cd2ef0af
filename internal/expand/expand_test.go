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

package expand

import (
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	klabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/testenv"
)

// sample reads a TServer from config/samples, in namespace default.
func sample(t *testing.T, name string) *tarsv1beta1.TServer {
	t.Helper()
	data, err := os.ReadFile(testenv.Path("config", "samples", name))
	if err != nil {
		t.Fatal(err)
	}
	ts := &tarsv1beta1.TServer{}
	if err := yaml.UnmarshalStrict(data, ts); err != nil {
		t.Fatal(err)
	}
	ts.Namespace = "default"
	return ts
}

// seedClaimTemplate is a claim template exactly as the seed's expanded YAML shows it.
func seedClaimTemplate(name, server string, annotations map[string]string) corev1.PersistentVolumeClaim {
	labels := map[string]string{
		"tars.io/LocalVolume": name,
		"tars.io/ServerApp":   "tars",
		"tars.io/ServerName":  server,
	}
	return corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			},
			Selector:         &metav1.LabelSelector{MatchLabels: labels},
			StorageClassName: new("t-storage-class"),
			VolumeMode:       ptr.To(corev1.PersistentVolumeFilesystem),
		},
	}
}

func TestClaimTemplatesSeed(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		mutate func(*tarsv1beta1.TServer)
		want   []corev1.PersistentVolumeClaim
	}{
		{
			name: "seed tarslog", file: "tars-tarslog.yaml",
			want: []corev1.PersistentVolumeClaim{seedClaimTemplate("remote-log-dir", "tarslog", map[string]string{
				"tars.io/LocalVolumeUID": "1000", "tars.io/LocalVolumeGID": "0", "tars.io/LocalVolumeMode": "755",
			})},
		},
		{
			name: "seed tarsconfig", file: "tars-tarsconfig.yaml",
			want: []corev1.PersistentVolumeClaim{seedClaimTemplate("delay-bind", "tarsconfig", nil)},
		},
		{
			name: "hostNetwork: the volume, then delay-bind", file: "tars-tarslog.yaml",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.HostNetwork = true },
			want: []corev1.PersistentVolumeClaim{
				seedClaimTemplate("remote-log-dir", "tarslog", map[string]string{
					"tars.io/LocalVolumeUID": "1000", "tars.io/LocalVolumeGID": "0", "tars.io/LocalVolumeMode": "755",
				}),
				seedClaimTemplate("delay-bind", "tarslog", nil),
			},
		},
		{
			name: "a hostPort", file: "tars-tarslog.yaml",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts = nil
				ts.Spec.K8S.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: "LogObj", Port: 18993}}
			},
			want: []corev1.PersistentVolumeClaim{seedClaimTemplate("delay-bind", "tarslog", nil)},
		},
		{
			name: "an undefaulted tLocalVolume", file: "tars-tarslog.yaml",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts[0].Source.TLocalVolume = &tarsv1beta1.TLocalVolume{}
			},
			want: []corev1.PersistentVolumeClaim{seedClaimTemplate("remote-log-dir", "tarslog", map[string]string{
				"tars.io/LocalVolumeUID": "0", "tars.io/LocalVolumeGID": "0", "tars.io/LocalVolumeMode": "755",
			})},
		},
		{
			name: "no volumes", file: "tars-tarslog.yaml",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts = nil },
			want:   nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := sample(t, tt.file)
			if tt.mutate != nil {
				tt.mutate(ts)
			}
			if diff := cmp.Diff(tt.want, ClaimTemplates(ts)); diff != "" {
				t.Errorf("ClaimTemplates() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClaimTemplatesUserTemplate(t *testing.T) {
	ts := sample(t, "tars-tarslog.yaml")
	user := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "ignored", Labels: map[string]string{"tier": "db"}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: new("fast"),
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("5Gi")},
			},
		},
	}
	ts.Spec.K8S.Mounts = []tarsv1beta1.TK8SMount{{
		Name: "db", MountPath: "/db", Source: tarsv1beta1.TK8SMountSource{PersistentVolumeClaimTemplate: user},
	}}
	want := []corev1.PersistentVolumeClaim{{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Labels: map[string]string{
			"tier": "db", "tars.io/ServerApp": "tars", "tars.io/ServerName": "tarslog",
		}},
		Spec: user.Spec,
	}}
	if diff := cmp.Diff(want, ClaimTemplates(ts)); diff != "" {
		t.Errorf("ClaimTemplates() (-want +got):\n%s", diff)
	}
	if user.Name != "ignored" || len(user.Labels) != 1 {
		t.Errorf("the TServer's template was modified: %+v", user.ObjectMeta)
	}
}

// supportsLocalVolumes is the node affinity of a server with a tLocalVolume.
var supportsLocalVolumes = []corev1.NodeSelectorRequirement{
	{Key: "tars.io/SupportLocalVolume", Operator: corev1.NodeSelectorOpExists},
	{Key: "tars.io/SupportLocalVolume", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"false"}},
}

// notFull is the node affinity every server with node-local volumes prefers.
var notFull = []corev1.PreferredSchedulingTerm{{Weight: 100, Preference: corev1.NodeSelectorTerm{
	MatchExpressions: []corev1.NodeSelectorRequirement{{
		Key: "tars.io/DiskFull", Operator: corev1.NodeSelectorOpDoesNotExist,
	}},
}}}

func TestBuildAffinity(t *testing.T) {
	spread := func(ts *tarsv1beta1.TServer) *corev1.PodAntiAffinity {
		return &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
			LabelSelector: &metav1.LabelSelector{MatchLabels: PodLabels(ts)}, TopologyKey: "kubernetes.io/hostname",
		}}}
	}
	for _, tt := range []struct {
		name   string
		mutate func(*tarsv1beta1.TServer)
		want   func(*tarsv1beta1.TServer) *corev1.Affinity
	}{
		{"no node-local volume, stacked", func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts = nil },
			func(*tarsv1beta1.TServer) *corev1.Affinity { return nil }},
		{"no node-local volume, notStacked",
			func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts, ts.Spec.K8S.NotStacked = nil, true },
			func(ts *tarsv1beta1.TServer) *corev1.Affinity { return &corev1.Affinity{PodAntiAffinity: spread(ts)} }},
		{"delay-bind only: spread, on any node, rather not a full one",
			func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts, ts.Spec.K8S.HostIPC = nil, true },
			func(ts *tarsv1beta1.TServer) *corev1.Affinity {
				return &corev1.Affinity{
					NodeAffinity:    &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: notFull},
					PodAntiAffinity: spread(ts),
				}
			}},
		{"a tLocalVolume: spread, on nodes that support them, rather not a full one", nil,
			func(ts *tarsv1beta1.TServer) *corev1.Affinity {
				return &corev1.Affinity{
					NodeAffinity: &corev1.NodeAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
							NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: supportsLocalVolumes}},
						},
						PreferredDuringSchedulingIgnoredDuringExecution: notFull,
					},
					PodAntiAffinity: spread(ts),
				}
			}},
		{"nodeSelector, no node-local volume", func(ts *tarsv1beta1.TServer) {
			ts.Spec.K8S.Mounts = nil
			ts.Spec.K8S.NodeSelector = []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpExists}}
		}, func(ts *tarsv1beta1.TServer) *corev1.Affinity {
			return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
					NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: ts.Spec.K8S.NodeSelector}},
				},
			}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := sample(t, "tars-tarslog.yaml")
			if tt.mutate != nil {
				tt.mutate(ts)
			}
			if diff := cmp.Diff(tt.want(ts), buildAffinity(ts)); diff != "" {
				t.Errorf("buildAffinity() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildTopologySpread(t *testing.T) {
	for _, tt := range []struct {
		name   string
		mutate func(*tarsv1beta1.TServer)
		spread bool
	}{
		{"a tLocalVolume", nil, true},
		{"delay-bind only", func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts, ts.Spec.K8S.HostNetwork = nil, true }, true},
		{"no node-local volume, notStacked",
			func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts, ts.Spec.K8S.NotStacked = nil, true }, false},
		{"no node-local volume", func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts = nil }, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ts := sample(t, "tars-tarslog.yaml")
			if tt.mutate != nil {
				tt.mutate(ts)
			}
			got := buildTopologySpread(ts)
			if !tt.spread {
				if got != nil {
					t.Errorf("buildTopologySpread() = %v, want none: the scheduler's defaults", got)
				}
				return
			}
			if len(got) != 1 || got[0].WhenUnsatisfiable != corev1.ScheduleAnyway || got[0].TopologyKey != corev1.LabelHostname {
				t.Fatalf("buildTopologySpread() = %v, want one ScheduleAnyway constraint over nodes", got)
			}
			// It counts every Tars pod of the namespace, other servers' too, and nothing else.
			selector, err := metav1.LabelSelectorAsSelector(got[0].LabelSelector)
			if err != nil {
				t.Fatal(err)
			}
			for pod, want := range map[string]bool{
				"this server":    selector.Matches(klabels.Set(PodLabels(ts))),
				"another server": selector.Matches(klabels.Set{"tars.io/ServerApp": "other", "tars.io/ServerName": "x"}),
				"not a Tars pod": !selector.Matches(klabels.Set{"app": "web"}),
			} {
				if !want {
					t.Errorf("selector %s is wrong for a pod of %s", selector, pod)
				}
			}
		})
	}
}

func TestStatefulSetTarslog(t *testing.T) {
	ts := sample(t, "tars-tarslog.yaml")
	labels := map[string]string{"tars.io/ServerApp": "tars", "tars.io/ServerName": "tarslog"}
	want := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "tars-tarslog", Namespace: "default", Labels: labels},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            ptr.To[int32](2),
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			ServiceName:         "tars-tarslog",
			PodManagementPolicy: appsv1.ParallelPodManagement,
			UpdateStrategy:      appsv1.StatefulSetUpdateStrategy{Type: appsv1.RollingUpdateStatefulSetStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:            "tars-tarslog",
						Image:           "tarscloud/tars.tarslog:v1",
						ImagePullPolicy: corev1.PullIfNotPresent,
						Env:             ts.Spec.K8S.Env,
						Ports:           []corev1.ContainerPort{{Name: "logobj", ContainerPort: 18993, Protocol: corev1.ProtocolTCP}},
						VolumeMounts:    []corev1.VolumeMount{{Name: "remote-log-dir", MountPath: "/usr/local/app/tars/remote_app_log"}},
					}},
					// A node-local volume: a node that supports them, rather not a full one, and one
					// replica per node.
					Affinity: &corev1.Affinity{
						NodeAffinity: &corev1.NodeAffinity{
							RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
								NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: supportsLocalVolumes}},
							},
							PreferredDuringSchedulingIgnoredDuringExecution: notFull,
						},
						PodAntiAffinity: &corev1.PodAntiAffinity{
							RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
								LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
								TopologyKey:   "kubernetes.io/hostname",
							}},
						},
					},
					// Its pods land where the namespace's Tars pods are fewest.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: "kubernetes.io/hostname", WhenUnsatisfiable: corev1.ScheduleAnyway,
						LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
							{Key: "tars.io/ServerApp", Operator: metav1.LabelSelectorOpExists},
						}},
					}},
				},
			},
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{
				seedClaimTemplate("remote-log-dir", "tarslog", map[string]string{
					"tars.io/LocalVolumeUID": "1000", "tars.io/LocalVolumeGID": "0", "tars.io/LocalVolumeMode": "755",
				}),
			},
			PersistentVolumeClaimRetentionPolicy: &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{
				WhenDeleted: appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
				WhenScaled:  appsv1.RetainPersistentVolumeClaimRetentionPolicyType,
			},
		},
	}
	if diff := cmp.Diff(want, StatefulSet(ts), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("StatefulSet() (-want +got):\n%s", diff)
	}
}

func TestStatefulSetFields(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*tarsv1beta1.TServer)
		check  func(*testing.T, *appsv1.StatefulSet)
	}{
		{
			name:   "tarsconfig runs in the host IPC namespace",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.HostIPC = true },
			check: func(t *testing.T, sts *appsv1.StatefulSet) {
				if !sts.Spec.Template.Spec.HostIPC {
					t.Error("hostIPC not set")
				}
			},
		},
		{
			name:   "no release: no replicas, a placeholder image",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.Release = nil },
			check: func(t *testing.T, sts *appsv1.StatefulSet) {
				if *sts.Spec.Replicas != 0 || sts.Spec.Template.Spec.Containers[0].Image != placeholderImage {
					t.Errorf("replicas %d image %q", *sts.Spec.Replicas, sts.Spec.Template.Spec.Containers[0].Image)
				}
			},
		},
		{
			name: "release secret, command, args, service account, pull policy, resources",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.Release.Secret = "registry"
				ts.Spec.K8S.Command, ts.Spec.K8S.Args = []string{"/bin/app"}, []string{"-v"}
				ts.Spec.K8S.ServiceAccount = "tars"
				ts.Spec.K8S.ImagePullPolicy = corev1.PullAlways
				ts.Spec.K8S.Resources.Limits = corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}
				ts.Spec.K8S.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}}}}
			},
			check: func(t *testing.T, sts *appsv1.StatefulSet) {
				pod := sts.Spec.Template.Spec
				c := pod.Containers[0]
				if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "registry"}}, pod.ImagePullSecrets); diff != "" {
					t.Error(diff)
				}
				if c.Command[0] != "/bin/app" || c.Args[0] != "-v" || pod.ServiceAccountName != "tars" ||
					c.ImagePullPolicy != corev1.PullAlways || c.Resources.Limits.Memory().String() != "1Gi" ||
					c.EnvFrom[0].ConfigMapRef.Name != "cfg" {
					t.Errorf("container %+v pod %+v", c, pod)
				}
			},
		},
		{
			name: "hostNetwork and hostPorts",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.HostNetwork = true
				ts.Spec.K8S.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: "LogObj", Port: 18993}}
			},
			check: func(t *testing.T, sts *appsv1.StatefulSet) {
				pod := sts.Spec.Template.Spec
				if !pod.HostNetwork || pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet ||
					pod.Containers[0].Ports[0].HostPort != 18993 {
					t.Errorf("pod %+v", pod)
				}
			},
		},
		{
			name: "nodeSelector, notStacked, readinessGates, OrderedReady, OnDelete",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.NodeSelector = []corev1.NodeSelectorRequirement{{
					Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"},
				}}
				ts.Spec.K8S.NotStacked = true
				ts.Spec.K8S.ReadinessGates = []string{"tars.io/active"}
				ts.Spec.K8S.PodManagementPolicy = appsv1.OrderedReadyPodManagement
				ts.Spec.K8S.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
			},
			check: func(t *testing.T, sts *appsv1.StatefulSet) {
				want := &corev1.Affinity{
					NodeAffinity: &corev1.NodeAffinity{
						RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
							NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
								{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}},
								supportsLocalVolumes[0], supportsLocalVolumes[1],
							}}},
						},
						PreferredDuringSchedulingIgnoredDuringExecution: notFull,
					},
					PodAntiAffinity: &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
						LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
							"tars.io/ServerApp": "tars", "tars.io/ServerName": "tarslog",
						}},
						TopologyKey: "kubernetes.io/hostname",
					}}},
				}
				if diff := cmp.Diff(want, sts.Spec.Template.Spec.Affinity); diff != "" {
					t.Error(diff)
				}
				if diff := cmp.Diff([]corev1.PodReadinessGate{{ConditionType: "tars.io/active"}},
					sts.Spec.Template.Spec.ReadinessGates); diff != "" {
					t.Error(diff)
				}
				if sts.Spec.PodManagementPolicy != appsv1.OrderedReadyPodManagement ||
					sts.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
					t.Errorf("policy %s strategy %s", sts.Spec.PodManagementPolicy, sts.Spec.UpdateStrategy.Type)
				}
			},
		},
		{
			name: "every volume source",
			mutate: func(ts *tarsv1beta1.TServer) {
				add := func(name string, s tarsv1beta1.TK8SMountSource) {
					ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts,
						tarsv1beta1.TK8SMount{Name: name, MountPath: "/" + name, Source: s})
				}
				add("host", tarsv1beta1.TK8SMountSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log"}})
				add("scratch", tarsv1beta1.TK8SMountSource{EmptyDir: &corev1.EmptyDirVolumeSource{}})
				add("secret", tarsv1beta1.TK8SMountSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}})
				add("config", tarsv1beta1.TK8SMountSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: "c"}}})
				add("info", tarsv1beta1.TK8SMountSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{}})
				add("shared", tarsv1beta1.TK8SMountSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{
					ClaimName: "nfs"}})
			},
			check: func(t *testing.T, sts *appsv1.StatefulSet) {
				names := make([]string, 0, len(sts.Spec.Template.Spec.Volumes))
				for _, v := range sts.Spec.Template.Spec.Volumes {
					names = append(names, v.Name)
				}
				// remote-log-dir is a claim template, not a pod volume.
				if diff := cmp.Diff([]string{"host", "scratch", "secret", "config", "info", "shared"}, names); diff != "" {
					t.Error(diff)
				}
				if n := len(sts.Spec.Template.Spec.Containers[0].VolumeMounts); n != 7 {
					t.Errorf("%d volume mounts, want 7", n)
				}
				if got := sts.Spec.Template.Spec.Volumes[5].PersistentVolumeClaim.ClaimName; got != "nfs" {
					t.Errorf("claim %q", got)
				}
			},
		},
		{
			name: "a servant name too long for a port name keeps its port unnamed",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.Tars.Servants[0].Name = "AVeryLongServantNameObj"
			},
			check: func(t *testing.T, sts *appsv1.StatefulSet) {
				if p := sts.Spec.Template.Spec.Containers[0].Ports[0]; p.Name != "" || p.ContainerPort != 18993 {
					t.Errorf("port %+v", p)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := sample(t, "tars-tarslog.yaml")
			tt.mutate(ts)
			tt.check(t, StatefulSet(ts))
		})
	}
}

func TestService(t *testing.T) {
	ts := sample(t, "tars-tarslog.yaml")
	ts.Spec.Tars.Servants = append(ts.Spec.Tars.Servants, tarsv1beta1.TServerServant{Name: "StatObj", Port: 18994})
	labels := map[string]string{"tars.io/ServerApp": "tars", "tars.io/ServerName": "tarslog"}
	want := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "tars-tarslog", Namespace: "default", Labels: labels},
		Spec: corev1.ServiceSpec{
			ClusterIP: corev1.ClusterIPNone,
			Selector:  labels,
			Ports: []corev1.ServicePort{
				{Name: "logobj", Port: 18993, TargetPort: intstr.FromInt32(18993), Protocol: corev1.ProtocolTCP},
				{Name: "statobj", Port: 18994, TargetPort: intstr.FromInt32(18994), Protocol: corev1.ProtocolUDP},
			},
		},
	}
	if diff := cmp.Diff(want, Service(ts), cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("Service() (-want +got):\n%s", diff)
	}
}
