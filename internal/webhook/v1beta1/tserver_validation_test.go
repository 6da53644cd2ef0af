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
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// tarslog is the seed's tarslog TServer, valid as it stands.
func tarslog() *tarsv1beta1.TServer {
	return &tarsv1beta1.TServer{
		ObjectMeta: metav1.ObjectMeta{Name: tarslogKey.Name, Namespace: tarslogKey.Namespace},
		Spec: tarsv1beta1.TServerSpec{
			App:     "tars",
			Server:  "tarslog",
			SubType: tarsv1beta1.SubTypeTars,
			Tars: &tarsv1beta1.TServerTars{Servants: []tarsv1beta1.TServerServant{
				{Name: logObj, Port: 18993, IsTcp: true},
			}},
			Release: &tarsv1beta1.TServerRelease{ID: "v1", Image: "tarscloud/tars.tarslog:v1"},
			K8S: tarsv1beta1.TServerK8S{
				Replicas: 2,
				Env: []corev1.EnvVar{
					{Name: "Namespace", ValueFrom: &corev1.EnvVarSource{
						FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"},
					}},
					{Name: "PodName", ValueFrom: &corev1.EnvVarSource{
						FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
					}},
				},
				Mounts: []tarsv1beta1.TK8SMount{{
					Name:      "remote-log-dir",
					MountPath: "/usr/local/app/tars/remote_app_log",
					Source: tarsv1beta1.TK8SMountSource{
						TLocalVolume: &tarsv1beta1.TLocalVolume{UID: "1000", GID: "0", Mode: "755"},
					},
				}},
			},
		},
	}
}

// errorKeys renders errors as "Type field" strings, which is what the tables compare.
func errorKeys(errs field.ErrorList) []string {
	keys := make([]string, 0, len(errs))
	for _, e := range errs {
		keys = append(keys, string(e.Type)+" "+e.Field)
	}
	return keys
}

func withLocalVolume(uid, gid, mode string) func(*tarsv1beta1.TServer) {
	return func(ts *tarsv1beta1.TServer) {
		ts.Spec.K8S.Mounts[0].Source.TLocalVolume = &tarsv1beta1.TLocalVolume{UID: uid, GID: gid, Mode: mode}
	}
}

// withHostPath adds a mount "host" of the node's path p.
func withHostPath(p string) func(*tarsv1beta1.TServer) {
	return func(ts *tarsv1beta1.TServer) {
		ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
			Name: "host", MountPath: "/host",
			Source: tarsv1beta1.TK8SMountSource{HostPath: &corev1.HostPathVolumeSource{Path: p}},
		})
	}
}

const (
	testNamespace = "default"
	logObj        = "LogObj"
	zoneKey       = "zone"

	lvUID  = "spec.k8s.mounts[0].source.tLocalVolume.uid"
	lvGID  = "spec.k8s.mounts[0].source.tLocalVolume.gid"
	lvMode = "spec.k8s.mounts[0].source.tLocalVolume.mode"
	// hostPath is the path of withHostPath's mount.
	hostPath = "spec.k8s.mounts[1].source.hostPath.path"
)

// validationCase is a change to the seed's tarslog and the errors ValidateTServer gives for it.
type validationCase struct {
	name   string
	mutate func(*tarsv1beta1.TServer)
	want   []string
}

// validationCases are ValidateTServer's tests; the webhook suite also sends each to the API
// server, to check that none it spares the webhook (its match condition) is invalid.
func validationCases() []validationCase {
	invalid := string(field.ErrorTypeInvalid) + " "
	return []validationCase{
		{name: "seed tarslog", mutate: func(*tarsv1beta1.TServer) {}},
		{name: "uid gid mode at their bounds", mutate: withLocalVolume("999999", "0", "0777")},
		{name: "mode 111", mutate: withLocalVolume("0", "1", "111")},
		{name: "uid -1", mutate: withLocalVolume("-1", "0", "755"), want: []string{invalid + lvUID}},
		{name: "uid 01", mutate: withLocalVolume("01", "0", "755"), want: []string{invalid + lvUID}},
		{name: "uid 1000000", mutate: withLocalVolume("1000000", "0", "755"), want: []string{invalid + lvUID}},
		{name: "uid empty", mutate: withLocalVolume("", "0", "755"), want: []string{invalid + lvUID}},
		{name: "gid with letters", mutate: withLocalVolume("0", "wheel", "755"), want: []string{invalid + lvGID}},
		{name: "mode 8", mutate: withLocalVolume("0", "0", "8"), want: []string{invalid + lvMode}},
		{name: "mode 750", mutate: withLocalVolume("0", "0", "750"), want: []string{invalid + lvMode}},
		{name: "mode 0750", mutate: withLocalVolume("0", "0", "0750"), want: []string{invalid + lvMode}},
		{name: "mode 1777", mutate: withLocalVolume("0", "0", "1777"), want: []string{invalid + lvMode}},
		{name: "mode 00755", mutate: withLocalVolume("0", "0", "00755"), want: []string{invalid + lvMode}},
		{
			name:   "every bad local volume field is reported at once",
			mutate: withLocalVolume("-1", "01", "750"),
			want:   []string{invalid + lvUID, invalid + lvGID, invalid + lvMode},
		},
		{
			name: "mount named delay-bind",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts[0].Name = tarsv1beta1.DelayBindVolumeName
			},
			want: []string{invalid + "spec.k8s.mounts[0].name"},
		},
		{
			name:   "mount name not a DNS label",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts[0].Name = "Remote_Log" },
			want:   []string{invalid + "spec.k8s.mounts[0].name"},
		},
		{
			name: "duplicate mount names",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
					Name: "remote-log-dir", MountPath: "/other",
					Source: tarsv1beta1.TK8SMountSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
				})
			},
			want: []string{"FieldValueDuplicate spec.k8s.mounts[1].name"},
		},
		{
			name: "duplicate mount paths",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
					Name: "other", MountPath: "/usr/local/app/tars/remote_app_log/",
					Source: tarsv1beta1.TK8SMountSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
				})
			},
			want: []string{"FieldValueDuplicate spec.k8s.mounts[1].mountPath"},
		},
		{
			name: "mount with two sources",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts[0].Source.EmptyDir = &corev1.EmptyDirVolumeSource{}
			},
			want: []string{"FieldValueForbidden spec.k8s.mounts[0].source"},
		},
		{
			name:   "mount without source",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts[0].Source = tarsv1beta1.TK8SMountSource{} },
			want:   []string{"FieldValueRequired spec.k8s.mounts[0].source"},
		},
		{
			name:   "relative mount path",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts[0].MountPath = "logs" },
			want:   []string{invalid + "spec.k8s.mounts[0].mountPath"},
		},
		{
			name:   "subPath climbing out",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts[0].SubPath = "a/../../etc" },
			want:   []string{invalid + "spec.k8s.mounts[0].subPath"},
		},
		{
			name: "subPath and subPathExpr together",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts[0].SubPath = "a"
				ts.Spec.K8S.Mounts[0].SubPathExpr = "$(PodName)"
			},
			want: []string{invalid + "spec.k8s.mounts[0].subPathExpr"},
		},
		{name: "hostPath of a log directory", mutate: withHostPath("/var/log")},
		{name: "hostPath beside the host root", mutate: withHostPath("/usr/local/app/tars/host-mount2")},
		{
			name:   "hostPath at the host root",
			mutate: withHostPath("/usr/local/app/tars/host-mount"),
			want:   []string{invalid + hostPath},
		},
		{
			name:   "hostPath of another server's volume",
			mutate: withHostPath("/usr/local/app/tars/host-mount/default/tars.tarsconfig/data"),
			want:   []string{invalid + hostPath},
		},
		{name: "hostPath of the node's root", mutate: withHostPath("/"), want: []string{invalid + hostPath}},
		{name: "hostPath above the host root", mutate: withHostPath("/usr/local/app"), want: []string{invalid + hostPath}},
		{
			name:   "hostPath at the host root, unclean",
			mutate: withHostPath("//usr/local/./app/tars/x/../host-mount/"),
			want:   []string{invalid + hostPath},
		},
		{name: "hostPath climbing to the root", mutate: withHostPath("/var/log/../../"), want: []string{invalid + hostPath}},
		{
			name:   "hostPath relative",
			mutate: withHostPath("usr/local/app/tars/host-mount"),
			want:   []string{invalid + hostPath},
		},
		{
			name: "claim template without storage request",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts[0].Source = tarsv1beta1.TK8SMountSource{
					PersistentVolumeClaimTemplate: &corev1.PersistentVolumeClaim{
						Spec: corev1.PersistentVolumeClaimSpec{
							AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
						},
					},
				}
			},
			want: []string{
				"FieldValueRequired spec.k8s.mounts[0].source.persistentVolumeClaimTemplate.spec.resources.requests.storage",
			},
		},
		{
			name: "claim template of the node-local volumes' class",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Mounts[0].Source = tarsv1beta1.TK8SMountSource{
					PersistentVolumeClaimTemplate: &corev1.PersistentVolumeClaim{
						Spec: corev1.PersistentVolumeClaimSpec{
							AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
							Resources: corev1.VolumeResourceRequirements{
								Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
							},
							StorageClassName: new(tarsv1beta1.StorageClassName),
							Selector: &metav1.LabelSelector{MatchLabels: map[string]string{
								tarsv1beta1.LabelServerApp:   "tars",
								tarsv1beta1.LabelServerName:  "tarsconfig",
								tarsv1beta1.LabelLocalVolume: "data",
							}},
						},
					},
				}
			},
			want: []string{"FieldValueInvalid spec.k8s.mounts[0].source.persistentVolumeClaimTemplate.spec.storageClassName"},
		},
		{
			name:   "name not lower(app)-lower(server)",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Name = "tarslog" },
			want:   []string{invalid + "metadata.name"},
		},
		{
			name: "mixed-case app and server",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.App, ts.Spec.Server = "Tars", "TarsLog"
			},
		},
		{
			name: "name too long for a StatefulSet's pods",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.App, ts.Spec.Server = strings.Repeat("a", 26), strings.Repeat("b", 26)
				ts.Name = tarsv1beta1.ResourceName(ts.Spec.App, ts.Spec.Server)
			},
			want: []string{invalid + "metadata.name"},
		},
		{
			name:   "app starting with a digit",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.App = "1tars" },
			want:   []string{invalid + "spec.app"},
		},
		{
			name:   "server with a dash",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.Server = "tars-log" },
			want:   []string{invalid + "spec.server"},
		},
		{
			name:   "empty app",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.App = "" },
			want:   []string{"FieldValueRequired spec.app"},
		},
		{
			name:   "unknown subType",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.SubType = "grpc" },
			want:   []string{"FieldValueNotSupported spec.subType"},
		},
		{
			name:   "subType tars without servants block",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.Tars = nil },
			want:   []string{"FieldValueRequired spec.tars"},
		},
		{
			name: "subType tars with normal ports",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.Normal = &tarsv1beta1.TServerNormal{}
			},
			want: []string{"FieldValueForbidden spec.normal"},
		},
		{
			name: "subType normal",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.SubType, ts.Spec.Tars = tarsv1beta1.SubTypeNormal, nil
				ts.Spec.Normal = &tarsv1beta1.TServerNormal{
					Ports: []tarsv1beta1.TServerPort{{Name: "http", Port: 8080, IsTcp: true}},
				}
				ts.Spec.K8S.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: "http", Port: 80}}
			},
		},
		{
			name: "duplicate servant names ignoring case and duplicate ports",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.Tars.Servants = append(ts.Spec.Tars.Servants, tarsv1beta1.TServerServant{Name: "logobj", Port: 18993})
			},
			want: []string{"FieldValueDuplicate spec.tars.servants[1].name", "FieldValueDuplicate spec.tars.servants[1].port"},
		},
		{
			name: "servant port out of range",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.Tars.Servants[0].Port = 70000
			},
			want: []string{invalid + "spec.tars.servants[0].port"},
		},
		{
			name: "hostIPC, hostNetwork and a hostPort",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.HostIPC, ts.Spec.K8S.HostNetwork = true, true
				ts.Spec.K8S.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: logObj, Port: 18993}}
			},
		},
		{
			name: "hostNetwork with a host port other than the servant's",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.HostNetwork = true
				ts.Spec.K8S.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: logObj, Port: 80}}
			},
			want: []string{invalid + "spec.k8s.hostPorts[0].port"},
		},
		{
			name: "hostPort naming no servant",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: "NoSuchObj", Port: 18993}}
			},
			want: []string{"FieldValueNotSupported spec.k8s.hostPorts[0].nameRef"},
		},
		{
			name: "duplicate host ports",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.Tars.Servants = append(ts.Spec.Tars.Servants, tarsv1beta1.TServerServant{Name: "StatObj", Port: 18994})
				ts.Spec.K8S.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: logObj, Port: 80}, {NameRef: "StatObj", Port: 80}}
			},
			want: []string{"FieldValueDuplicate spec.k8s.hostPorts[1].port"},
		},
		{
			name: "same servant exposed twice",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.HostPorts = []tarsv1beta1.TK8SHostPort{{NameRef: logObj, Port: 80}, {NameRef: logObj, Port: 81}}
			},
			want: []string{"FieldValueDuplicate spec.k8s.hostPorts[1].nameRef"},
		},
		{
			name:   "release without image",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.Release.Image = " " },
			want:   []string{"FieldValueRequired spec.release.image"},
		},
		{
			name:   "no release",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.Release = nil },
		},
		{
			name:   "bad pull secret name",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.Release.Secret = "My_Secret" },
			want:   []string{invalid + "spec.release.secret"},
		},
		{
			name:   "negative replicas",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = -1 },
			want:   []string{invalid + "spec.k8s.replicas"},
		},
		{
			name:   "replicas at the cap",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = tarsv1beta1.MaxReplicas },
		},
		{
			name:   "replicas above the cap",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 2_000_000_000 },
			want:   []string{invalid + "spec.k8s.replicas"},
		},
		{
			name:   "env var with = in its name",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Env[0].Name = "A=B" },
			want:   []string{invalid + "spec.k8s.env[0].name"},
		},
		{
			name: "node selector",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.NodeSelector = []corev1.NodeSelectorRequirement{
					{Key: "tars.io/node", Operator: corev1.NodeSelectorOpExists},
					{Key: zoneKey, Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}},
				}
			},
		},
		{
			name: "bad node selector requirements",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.NodeSelector = []corev1.NodeSelectorRequirement{
					{Key: zoneKey, Operator: corev1.NodeSelectorOpIn},
					{Key: "cpu", Operator: corev1.NodeSelectorOpGt, Values: []string{"many"}},
					{Key: zoneKey, Operator: "Near"},
				}
			},
			want: []string{
				"FieldValueRequired spec.k8s.nodeSelector[0].values",
				invalid + "spec.k8s.nodeSelector[1].values[0]",
				"FieldValueNotSupported spec.k8s.nodeSelector[2].operator",
			},
		},
		{
			name: "request above limit",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.Resources = corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
				}
			},
			want: []string{invalid + "spec.k8s.resources.requests[cpu]"},
		},
		{
			name:   "unknown pod management policy",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.PodManagementPolicy = "AllAtOnce" },
			want:   []string{"FieldValueNotSupported spec.k8s.podManagementPolicy"},
		},
		{
			name: "rolling update partition on OnDelete",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.K8S.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{
					Type:          appsv1.OnDeleteStatefulSetStrategyType,
					RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: ptr.To[int32](1)},
				}
			},
			want: []string{"FieldValueForbidden spec.k8s.updateStrategy.rollingUpdate"},
		},
		{
			name:   "readiness gate not a qualified name",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.ReadinessGates = []string{"tars.io/ready/now"} },
			want:   []string{invalid + "spec.k8s.readinessGates[0]"},
		},
	}
}

func TestValidateTServer(t *testing.T) {
	for _, tt := range validationCases() {
		t.Run(tt.name, func(t *testing.T) {
			ts := tarslog()
			tt.mutate(ts)
			got := errorKeys(ValidateTServer(ts))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ValidateTServer() errors (-want +got):\n%s\nall: %v", diff, ValidateTServer(ts))
			}
		})
	}
}

func TestValidateTServerHostRoot(t *testing.T) {
	opts := ValidationOptions{HostRoot: "/data/tars/"}
	for _, tc := range []struct {
		path string
		want []string
	}{
		{path: tarsv1beta1.DefaultHostRoot},
		{path: "/data/tars", want: []string{"FieldValueInvalid " + hostPath}},
		{path: "/data/tars/default/tars.other/data", want: []string{"FieldValueInvalid " + hostPath}},
		{path: "/data", want: []string{"FieldValueInvalid " + hostPath}},
		{path: "/data/tarsdb"},
	} {
		ts := tarslog()
		withHostPath(tc.path)(ts)
		if diff := cmp.Diff(tc.want, errorKeys(opts.ValidateTServer(ts)), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("hostPath %s under host root %s (-want +got):\n%s", tc.path, opts.HostRoot, diff)
		}
	}
	ts := tarslog()
	withHostPath("/usr/local/app/tars/host-mount/")(ts)
	want := `spec.k8s.mounts[1].source.hostPath.path: Invalid value: "/usr/local/app/tars/host-mount/": ` +
		`must not be the host root /usr/local/app/tars/host-mount, a directory under it or one above it`
	if err := invalid(ts, ValidateTServer(ts)); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("error %v\ndoes not contain %q", err, want)
	}
}

func TestValidateTServerMessages(t *testing.T) {
	ts := tarslog()
	withLocalVolume("-1", "0", "8")(ts)
	err := invalid(ts, ValidateTServer(ts))
	for _, want := range []string{
		`TServer.k8s.tars.io "tars-tarslog" is invalid`,
		`spec.k8s.mounts[0].source.tLocalVolume.uid: Invalid value: "-1": must match ^(0|[1-9][0-9]{0,5})$`,
		`spec.k8s.mounts[0].source.tLocalVolume.mode: Invalid value: "8": must match ^0?[1-7]{3,3}$`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q\ndoes not contain %q", err, want)
		}
	}
	if invalid(tarslog(), nil) != nil {
		t.Error("a valid TServer gave an error")
	}
}

func TestValidateTServerUpdate(t *testing.T) {
	tests := []struct {
		name   string
		old    func(*tarsv1beta1.TServer)
		mutate func(*tarsv1beta1.TServer)
		want   []string
	}{
		{name: "scale", mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 5 }},
		{
			name:   "new uid and mode",
			mutate: withLocalVolume("2000", "100", "700"),
			want:   []string{"FieldValueInvalid " + lvMode},
		},
		{
			name: "app changed",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.App, ts.Name = "other", "other-tarslog"
			},
			want: []string{"FieldValueInvalid spec.app"},
		},
		{
			name:   "server changed",
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.Server, ts.Name = "tarslog2", "tars-tarslog2" },
			want:   []string{"FieldValueInvalid spec.server"},
		},
		{
			name: "subType changed",
			mutate: func(ts *tarsv1beta1.TServer) {
				ts.Spec.SubType, ts.Spec.Tars = tarsv1beta1.SubTypeNormal, nil
				ts.Spec.Normal = &tarsv1beta1.TServerNormal{}
			},
			want: []string{"FieldValueInvalid spec.subType"},
		},
		{
			name:   "an already invalid mode may stay while the object is scaled",
			old:    withLocalVolume("0", "0", "750"),
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 3 },
		},
		{
			name:   "a hostPath to the host root stored before the rule may stay while the object is scaled",
			old:    withHostPath("/usr/local/app/tars/host-mount"),
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 3 },
		},
		{
			name:   "a hostPath to the host root may not be added",
			mutate: withHostPath("/usr/local/app/tars/host-mount"),
			want:   []string{"FieldValueInvalid " + hostPath},
		},
		{
			name:   "a hostPath may not move from the host root to another volume's directory",
			old:    withHostPath("/usr/local/app/tars/host-mount"),
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Mounts[1].Source.HostPath.Path += "/default/tars.other" },
			want:   []string{"FieldValueInvalid " + hostPath},
		},
		{
			name:   "replicas above the cap stored before it may stay while the image changes",
			old:    func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 6000 },
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.Release.Image = "tarscloud/tars.tarslog:v2" },
		},
		{
			name:   "replicas above the cap may come down",
			old:    func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 6000 },
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 10 },
		},
		{
			name:   "replicas above the cap may not grow",
			old:    func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 6000 },
			mutate: func(ts *tarsv1beta1.TServer) { ts.Spec.K8S.Replicas = 6001 },
			want:   []string{"FieldValueInvalid spec.k8s.replicas"},
		},
		{
			name:   "an already invalid mode may not become another invalid mode",
			old:    withLocalVolume("0", "0", "750"),
			mutate: withLocalVolume("0", "0", "740"),
			want:   []string{"FieldValueInvalid " + lvMode},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldTS := tarslog()
			if tt.old != nil {
				tt.old(oldTS)
			}
			newTS := oldTS.DeepCopy()
			tt.mutate(newTS)
			got := errorKeys(ValidateTServerUpdate(oldTS, newTS))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ValidateTServerUpdate() errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDefaultTServer(t *testing.T) {
	defaulted := &tarsv1beta1.TLocalVolume{UID: "0", GID: "0", Mode: "755"}
	tests := []struct {
		name string
		in   *tarsv1beta1.TLocalVolume
		want *tarsv1beta1.TLocalVolume
	}{
		{name: "empty object", in: &tarsv1beta1.TLocalVolume{}, want: defaulted},
		{name: "empty strings", in: &tarsv1beta1.TLocalVolume{UID: "", GID: "", Mode: ""}, want: defaulted},
		{
			name: "only uid",
			in:   &tarsv1beta1.TLocalVolume{UID: "1000"},
			want: &tarsv1beta1.TLocalVolume{UID: "1000", GID: "0", Mode: "755"},
		},
		{
			name: "only mode",
			in:   &tarsv1beta1.TLocalVolume{Mode: "700"},
			want: &tarsv1beta1.TLocalVolume{UID: "0", GID: "0", Mode: "700"},
		},
		{
			name: "complete, even if invalid, is kept",
			in:   &tarsv1beta1.TLocalVolume{UID: "-1", GID: "5", Mode: "8"},
			want: &tarsv1beta1.TLocalVolume{UID: "-1", GID: "5", Mode: "8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := tarslog()
			ts.Spec.K8S.Mounts[0].Source.TLocalVolume = tt.in
			ts.Spec.K8S.Mounts = append(ts.Spec.K8S.Mounts, tarsv1beta1.TK8SMount{
				Name: "scratch", MountPath: "/scratch",
				Source: tarsv1beta1.TK8SMountSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
			})
			want := ts.DeepCopy()
			want.Spec.K8S.Mounts[0].Source.TLocalVolume = tt.want
			DefaultTServer(ts)
			if diff := cmp.Diff(want, ts); diff != "" {
				t.Errorf("DefaultTServer() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSamples keeps config/samples honest: the samples pass validation, and each file under
// config/samples/invalid fails at the field its "# expect:" line names.
func TestSamples(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "config", "samples")
	for _, name := range []string{"tars-tarslog.yaml", "tars-tarsconfig.yaml"} {
		ts, _ := readSample(t, filepath.Join(dir, name))
		DefaultTServer(ts)
		if errs := ValidateTServer(ts); len(errs) > 0 {
			t.Errorf("%s: %v", name, errs)
		}
	}
	bad, err := filepath.Glob(filepath.Join(dir, "invalid", "*.yaml"))
	if err != nil || len(bad) == 0 {
		t.Fatalf("no invalid samples found: %v", err)
	}
	for _, file := range bad {
		ts, expect := readSample(t, file)
		if expect == "" {
			t.Errorf("%s has no '# expect:' line", file)
			continue
		}
		// The webhook alone must catch it too, whatever the CRD schema also checks.
		DefaultTServer(ts)
		errs := ValidateTServer(ts)
		if !slices.ContainsFunc(errs, func(e *field.Error) bool { return strings.HasPrefix(e.Field, expect) }) {
			t.Errorf("%s: want an error at %s, got %v", file, expect, errs)
		}
	}
}

// readSample decodes a TServer sample and returns it with the field path of its "# expect:" line.
func readSample(t *testing.T, file string) (*tarsv1beta1.TServer, string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ts := &tarsv1beta1.TServer{}
	if err := yaml.UnmarshalStrict(data, ts); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return ts, expectedField(data)
}

func expectedField(data []byte) string {
	for line := range strings.SplitSeq(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "# expect: "); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

// BenchmarkValidateAndDefault is the webhooks' work for one seed TServer, without the HTTP.
func BenchmarkValidateAndDefault(b *testing.B) {
	ts := tarslog()
	ts.Spec.K8S.Mounts[0].Source.TLocalVolume = &tarsv1beta1.TLocalVolume{}
	b.ReportAllocs()
	for b.Loop() {
		obj := ts.DeepCopy()
		DefaultTServer(obj)
		if errs := ValidateTServerUpdate(ts, obj); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
