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

// Package deploy checks what `make deploy` and the Helm chart install, as rendered: a real API
// server accepts every object (server-side dry run, with cert-manager's CRDs installed, and
// prometheus-operator's for the monitoring); the agent's ClusterRole grants exactly what the
// agent uses when it runs (read from the API server's audit log); the node restriction policy
// keeps each agent to the volumes and claims of its own node; and turning the monitoring on adds
// ServiceMonitors that reach the manager and every agent, the alerts and the dashboard of config/.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/tserver-operator/tserver-operator/internal/testenv"
)

// rendered reads the manifests that `make test-deploy` renders into $RENDERED_MANIFESTS.
func rendered(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	path := os.Getenv("RENDERED_MANIFESTS")
	if path == "" {
		t.Skip("skipped: RENDERED_MANIFESTS is not set; `make test-deploy` renders config/default and sets it")
	}
	return decodeManifests(t, path)
}

// decodeManifests reads the objects of a file of YAML documents.
func decodeManifests(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		err := dec.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
	if len(objs) == 0 {
		t.Fatalf("%s holds no objects", path)
	}
	return objs
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string, into any) {
	t.Helper()
	i := slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool {
		return o.GetKind() == kind && o.GetName() == name
	})
	if i < 0 {
		t.Fatalf("no %s %s in the rendered manifests", kind, name)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(objs[i].Object, into); err != nil {
		t.Fatal(err)
	}
}

// TestAPIServerAcceptsEverything applies every rendered object with a server-side dry run, and
// those the monitoring adds when `make test-deploy` renders it too.
func TestAPIServerAcceptsEverything(t *testing.T) {
	objs := rendered(t)
	crds := os.Getenv("CERT_MANAGER_CRDS")
	if crds == "" {
		t.Skip("skipped: CERT_MANAGER_CRDS is not set; `make test-deploy` finds cert-manager's CRDs in its Go module")
	}
	crdPaths := []string{crds}
	expected := []string{
		"CustomResourceDefinition", "Deployment", "DaemonSet", "StorageClass", "Certificate", "Issuer",
		"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration", "ClusterRole", "ClusterRoleBinding",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
	}
	if servesMutatingPolicy() {
		expected = append(expected, "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")
	}
	if os.Getenv("MONITORING_MANIFESTS") != "" {
		monitoringCRDs := os.Getenv("PROMETHEUS_OPERATOR_CRDS")
		if monitoringCRDs == "" {
			t.Skip("skipped: PROMETHEUS_OPERATOR_CRDS is not set; `make test-deploy` finds prometheus-operator's " +
				"CRDs in its Go module")
		}
		crdPaths = append(crdPaths, filepath.Join(monitoringCRDs, "monitoring.coreos.com_servicemonitors.yaml"),
			filepath.Join(monitoringCRDs, "monitoring.coreos.com_prometheusrules.yaml"))
		objs = append(objs, monitoringAdded(t)...)
		expected = append(expected, "ServiceMonitor", "PrometheusRule", "ConfigMap")
	}
	env := testenv.New(false)
	env.CRDDirectoryPaths, env.ErrorIfCRDPathMissing = crdPaths, true
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Namespaces for real, so that the dry runs of what lives in them can succeed: those
	// rendered, and those a chart leaves to `helm install --create-namespace`.
	namespaces := map[string]bool{}
	for _, obj := range objs {
		switch {
		case obj.GetKind() == "Namespace":
			namespaces[obj.GetName()] = true
		case obj.GetNamespace() != "":
			namespaces[obj.GetNamespace()] = true
		}
	}
	for ns := range namespaces {
		nsObj := &unstructured.Unstructured{}
		nsObj.SetAPIVersion("v1")
		nsObj.SetKind("Namespace")
		nsObj.SetName(ns)
		if err := c.Create(ctx, nsObj); err != nil {
			t.Fatalf("Namespace %s: %v", ns, err)
		}
	}
	kinds := map[string]int{}
	for _, obj := range objs {
		kinds[obj.GetKind()]++
		if obj.GetKind() == "Namespace" {
			continue
		}
		if err := c.Create(ctx, obj.DeepCopy(), client.DryRunAll); err != nil {
			t.Errorf("%s %s rejected: %v", obj.GetKind(), obj.GetName(), err)
		}
	}
	for _, kind := range expected {
		if kinds[kind] == 0 {
			t.Errorf("no %s rendered", kind)
		}
	}
}

// TestMakeDeployPicksTheConfig asks `make deploy`'s own question (DEPLOY_CONFIG: does the cluster
// serve MutatingAdmissionPolicy?) of a real API server of the release under test: config/default
// from 1.36, config/overlays/before-1.36 before, so that `make deploy` needs no edit on either.
func TestMakeDeployPicksTheConfig(t *testing.T) {
	for _, tool := range []string{"make", "kubectl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipped: no %s on PATH", tool)
		}
	}
	env := testenv.New(false)
	if _, err := env.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	admin, err := env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "--no-print-directory", "deploy-config")
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+path)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make deploy-config: %v", err)
	}
	want := "config/overlays/before-1.36"
	if servesMutatingPolicy() {
		want = "config/default"
	}
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("make deploy would apply %q on Kubernetes %s, want %q", got, os.Getenv("KUBE_VERSION"), want)
	}
}

// TestAgentDaemonSet checks what a node agent needs, and nothing more.
func TestAgentDaemonSet(t *testing.T) {
	ds := &appsv1.DaemonSet{}
	find(t, rendered(t), "DaemonSet", "tserver-operator-agent", ds)
	pod := ds.Spec.Template.Spec
	if pod.ServiceAccountName != "tserver-operator-agent" {
		t.Errorf("service account %q", pod.ServiceAccountName)
	}
	c := pod.Containers[0]
	if !slices.Equal(c.Command, []string{"/tserver-agent"}) {
		t.Errorf("command %v does not run the agent binary", c.Command)
	}
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "NODE_NAME" })
	if i < 0 || c.Env[i].ValueFrom == nil || c.Env[i].ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME does not come from the downward API: %+v", c.Env)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged != nil && *sc.Privileged {
		t.Errorf("security context %+v", sc)
	} else if diff := cmp.Diff([]corev1.Capability{"CHOWN", "FOWNER", "DAC_OVERRIDE"}, sc.Capabilities.Add); diff != "" ||
		!slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities %+v", sc.Capabilities)
	}
	j := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.HostPath != nil })
	if j < 0 || pod.Volumes[j].HostPath.Path != "/usr/local/app/tars/host-mount" ||
		*pod.Volumes[j].HostPath.Type != corev1.HostPathDirectoryOrCreate {
		t.Errorf("host root volume %+v", pod.Volumes)
	}
	// A data disk mounted under the host root after the agent started must reach it: else the
	// agent sees the empty directory beneath and takes the disk for missing.
	k := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return j >= 0 && m.Name == pod.Volumes[j].Name
	})
	if k < 0 || c.VolumeMounts[k].MountPropagation == nil ||
		*c.VolumeMounts[k].MountPropagation != corev1.MountPropagationHostToContainer {
		t.Errorf("host root mount %+v: mount propagation must be HostToContainer", c.VolumeMounts)
	}
	if !slices.Contains(c.Args, "--host-root=/usr/local/app/tars/host-mount") {
		t.Errorf("args %v do not name the host root", c.Args)
	}
	if c.LivenessProbe == nil || c.ReadinessProbe == nil {
		t.Error("probes missing")
	}
}

// TestStorageClassAndClaimPolicies checks the class provisions on the scheduler's node, and that
// the admission policies that label claims with that node and name their provisioner are each
// bound by their (prefixed) names, the latter to the class as its parameter.
func TestStorageClassAndClaimPolicies(t *testing.T) {
	objs := rendered(t)
	sc := &storagev1.StorageClass{}
	find(t, objs, "StorageClass", "t-storage-class", sc)
	if sc.Provisioner != "tars.io/local-volume" || sc.VolumeBindingMode == nil ||
		*sc.VolumeBindingMode != storagev1.VolumeBindingWaitForFirstConsumer {
		t.Errorf("StorageClass provisioner %q, binding mode %v", sc.Provisioner, sc.VolumeBindingMode)
	}
	var policies []string
	params := map[string]string{} // by the name of the policy a binding binds: the name of its parameter
	specs := map[string]any{}     // by kind and name
	for _, obj := range objs {
		switch obj.GetKind() {
		case "MutatingAdmissionPolicy":
			policies = append(policies, obj.GetName())
			if obj.GetNamespace() != "" {
				t.Errorf("cluster-scoped policy %s has namespace %q", obj.GetName(), obj.GetNamespace())
			}
		case "MutatingAdmissionPolicyBinding":
			name, _, _ := unstructured.NestedString(obj.Object, "spec", "policyName")
			params[name], _, _ = unstructured.NestedString(obj.Object, "spec", "paramRef", "name")
			// The policy's and the binding's names are one: compared as the source's.
			unstructured.RemoveNestedField(obj.Object, "spec", "policyName")
		}
		specs[obj.GetKind()+"/"+obj.GetName()] = obj.Object["spec"]
	}
	if !servesMutatingPolicy() {
		if len(policies) > 0 || len(params) > 0 {
			t.Errorf("policies %v, bindings to %v, on Kubernetes %s, which serves no MutatingAdmissionPolicy",
				policies, params, os.Getenv("KUBE_VERSION"))
		}
		return
	}
	for _, suffix := range []string{"claim-node-label", "claim-provisioner"} {
		i := slices.IndexFunc(policies, func(name string) bool { return strings.HasSuffix(name, suffix) })
		if i < 0 {
			t.Errorf("no policy %s rendered (policies %v)", suffix, policies)
			continue
		}
		param, bound := params[policies[i]]
		switch {
		case !bound:
			t.Errorf("policy %s is not bound (bindings to %v)", policies[i], params)
		case suffix == "claim-provisioner" && param != sc.Name:
			t.Errorf("policy %s reads StorageClass %q, not %q", policies[i], param, sc.Name)
		}
		// The chart's copies are written by hand: they must say what config/storageclass says.
		for _, source := range decodeManifests(t, filepath.Join("..", "..", "config", "storageclass", suffix+".yaml")) {
			unstructured.RemoveNestedField(source.Object, "spec", "policyName")
			got := specs[source.GetKind()+"/"+policies[i]]
			if diff := cmp.Diff(source.Object["spec"], got); diff != "" {
				t.Errorf("rendered %s %s differs from config/storageclass/%s.yaml (-want +got):\n%s",
					source.GetKind(), policies[i], suffix, diff)
			}
		}
	}
}
