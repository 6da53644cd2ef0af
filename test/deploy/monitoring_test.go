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

package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/tserver-operator/tserver-operator/internal/testenv"
)

// monitoring reads the manifests `make test-deploy` renders into $MONITORING_MANIFESTS: the
// installation of $RENDERED_MANIFESTS with the monitoring turned on (config/default and
// config/monitoring; the chart with prometheus.enabled and grafana.enabled).
func monitoring(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	path := os.Getenv("MONITORING_MANIFESTS")
	if path == "" {
		t.Skip("skipped: MONITORING_MANIFESTS is not set; `make test-deploy` renders the monitoring and sets it")
	}
	return decodeManifests(t, path)
}

// key names an object among those rendered.
func key(o *unstructured.Unstructured) string {
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// monitoringAdded are the objects that turning the monitoring on adds to the installation.
func monitoringAdded(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	without := map[string]bool{}
	for _, o := range rendered(t) {
		without[key(o)] = true
	}
	var added []*unstructured.Unstructured
	for _, o := range monitoring(t) {
		if !without[key(o)] {
			added = append(added, o)
		}
	}
	return added
}

// TestMonitoringAddsOnlyMonitoring checks that turning the monitoring on leaves every other
// object as it was and adds the ServiceMonitors, the agents' metrics Service, the alerts and the
// dashboard.
func TestMonitoringAddsOnlyMonitoring(t *testing.T) {
	with := map[string]*unstructured.Unstructured{}
	for _, o := range monitoring(t) {
		with[key(o)] = o
	}
	for _, o := range rendered(t) {
		switch w := with[key(o)]; {
		case w == nil:
			t.Errorf("%s is not installed with the monitoring on", key(o))
		case !cmp.Equal(o.Object, w.Object):
			t.Errorf("%s changes with the monitoring on (-off +on):\n%s", key(o), cmp.Diff(o.Object, w.Object))
		}
	}
	kinds := map[string]int{}
	for _, o := range monitoringAdded(t) {
		kinds[o.GetKind()]++
	}
	if diff := cmp.Diff(map[string]int{"ServiceMonitor": 2, "Service": 1, "PrometheusRule": 1, "ConfigMap": 1},
		kinds); diff != "" {
		t.Errorf("objects the monitoring adds, by kind (-want +got):\n%s", diff)
	}
}

// serviceMonitor is what the tests read of a ServiceMonitor.
type serviceMonitor struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port        string       `json:"port"`
			HonorLabels bool         `json:"honorLabels"`
			Relabelings []relabeling `json:"relabelings"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// relabeling is a ServiceMonitor's relabeling of its targets.
type relabeling struct {
	Action       string   `json:"action"`
	SourceLabels []string `json:"sourceLabels"`
	TargetLabel  string   `json:"targetLabel"`
}

// TestServiceMonitorsReachThePods follows each ServiceMonitor to the Service it selects and on to
// the pods that Service selects: the manager's pods, and every agent's, on their metrics ports,
// with the labels the alerts expect.
func TestServiceMonitorsReachThePods(t *testing.T) {
	objs := monitoring(t)
	reached := map[string]string{}
	for _, o := range objs {
		if o.GetKind() != "ServiceMonitor" {
			continue
		}
		var sm serviceMonitor
		find(t, []*unstructured.Unstructured{o}, o.GetKind(), o.GetName(), &sm)
		if len(sm.Spec.Endpoints) != 1 {
			t.Errorf("ServiceMonitor %s has %d endpoints, want 1", sm.Name, len(sm.Spec.Endpoints))
			continue
		}
		endpoint := sm.Spec.Endpoints[0]
		workload, container := scrapedBy(t, objs, sm.Namespace, sm.Spec.Selector.MatchLabels, endpoint.Port)
		if workload == "" {
			continue
		}
		reached[workload] = sm.Name
		if !endpoint.HonorLabels {
			t.Errorf("ServiceMonitor %s: honorLabels is not true: the namespace of a volume or a TServer would "+
				"become exported_namespace", sm.Name)
		}
		if container.Name != "agent" {
			continue
		}
		// The alerts attribute every agent series to a node.
		podNode := relabeling{Action: "replace", SourceLabels: []string{"__meta_kubernetes_pod_node_name"},
			TargetLabel: "node"}
		if !slices.ContainsFunc(endpoint.Relabelings, func(r relabeling) bool { return cmp.Equal(r, podNode) }) {
			t.Errorf("ServiceMonitor %s does not label the agents' series with their node: %+v", sm.Name,
				endpoint.Relabelings)
		}
		i := slices.IndexFunc(container.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" })
		if i < 0 ||
			!slices.Contains(container.Args, fmt.Sprintf("--metrics-bind-address=:%d", container.Ports[i].ContainerPort)) {
			t.Errorf("the agent's metrics port %v is not where it serves metrics (%v)", container.Ports, container.Args)
		}
	}
	if len(reached) != 2 || reached["DaemonSet tserver-operator-agent"] == "" {
		t.Errorf("workloads reached by the ServiceMonitors: %v, want the manager's Deployment and the agents' DaemonSet",
			reached)
	}
}

// scrapedBy is the workload whose pods the ServiceMonitor of a namespace, a selector and a port
// scrapes, and the container serving that port; "" after reporting why it reaches none.
func scrapedBy(t *testing.T, objs []*unstructured.Unstructured, namespace string, selector map[string]string,
	port string) (string, corev1.Container) {
	t.Helper()
	var services []corev1.Service
	for _, o := range objs {
		if o.GetKind() == "Service" && o.GetNamespace() == namespace &&
			labels.SelectorFromSet(selector).Matches(labels.Set(o.GetLabels())) {
			var svc corev1.Service
			find(t, []*unstructured.Unstructured{o}, "Service", o.GetName(), &svc)
			services = append(services, svc)
		}
	}
	if len(services) != 1 {
		t.Errorf("the ServiceMonitor of selector %v selects %d Services, want 1", selector, len(services))
		return "", corev1.Container{}
	}
	svc := services[0]
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == port })
	if i < 0 {
		t.Errorf("a ServiceMonitor scrapes port %q, which Service %s does not have", port, svc.Name)
		return "", corev1.Container{}
	}
	target := svc.Spec.Ports[i].TargetPort
	for _, o := range objs {
		var name string
		var pod corev1.PodTemplateSpec
		switch o.GetKind() {
		case "Deployment":
			var d appsv1.Deployment
			find(t, []*unstructured.Unstructured{o}, o.GetKind(), o.GetName(), &d)
			name, pod = "Deployment "+d.Name, d.Spec.Template
		case "DaemonSet":
			var d appsv1.DaemonSet
			find(t, []*unstructured.Unstructured{o}, o.GetKind(), o.GetName(), &d)
			name, pod = "DaemonSet "+d.Name, d.Spec.Template
		default:
			continue
		}
		if o.GetNamespace() != svc.Namespace ||
			!labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) {
			continue
		}
		for _, c := range pod.Spec.Containers {
			if servesPort(c, target) {
				return name, c
			}
		}
		t.Errorf("Service %s selects the pods of %s, but none of their containers has port %s", svc.Name, name,
			target.String())
		return "", corev1.Container{}
	}
	t.Errorf("Service %s selects no workload's pods", svc.Name)
	return "", corev1.Container{}
}

// servesPort says whether a container serves a Service's target port: a port of that name, or
// of that number, declared or the one it serves its metrics on (the manager declares none).
func servesPort(c corev1.Container, target intstr.IntOrString) bool {
	if target.Type == intstr.String {
		return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == target.StrVal })
	}
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == target.IntVal }) ||
		slices.Contains(c.Args, fmt.Sprintf("--metrics-bind-address=:%d", target.IntVal))
}

// TestAlertsAndDashboardAreConfigs checks that the alerts and the dashboard installed are those
// of config/ that `make test-alerts` tests: the Helm chart carries copies.
func TestAlertsAndDashboardAreConfigs(t *testing.T) {
	data, err := os.ReadFile(testenv.Path("config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules map[string]any
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	dashboard, err := os.ReadFile(testenv.Path("config", "grafana", "tserver-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	var alerts, dashboards int
	for _, o := range monitoringAdded(t) {
		switch o.GetKind() {
		case "PrometheusRule":
			alerts++
			if diff := cmp.Diff(rules["spec"], o.Object["spec"]); diff != "" {
				t.Errorf("PrometheusRule %s is not config/prometheus/rules.yaml's (-want +got):\n%s", o.GetName(), diff)
			}
		case "ConfigMap":
			dashboards++
			if v := o.GetLabels()["grafana_dashboard"]; v != "1" {
				t.Errorf("ConfigMap %s: label grafana_dashboard is %s, which Grafana's sidecar does not load",
					o.GetName(), strconv.Quote(v))
			}
			got, _, _ := unstructured.NestedString(o.Object, "data", "tserver-operator.json")
			if got != string(dashboard) {
				t.Errorf("ConfigMap %s does not hold config/grafana/tserver-operator.json", o.GetName())
			}
			if !json.Valid([]byte(got)) {
				t.Errorf("ConfigMap %s: the dashboard is not JSON", o.GetName())
			}
		}
	}
	if alerts != 1 || dashboards != 1 {
		t.Errorf("%d PrometheusRules and %d dashboard ConfigMaps installed, want one each", alerts, dashboards)
	}
}
