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
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

const (
	annProvisionedBy = "pv.kubernetes.io/provisioned-by"
	annSelectedNode  = "volume.kubernetes.io/selected-node"
)

// testVolume is a node-local volume as the agent of node makes it, pinned to hostname; node ""
// leaves out the attribution, as TarsK8S did.
func testVolume(name, node, hostname, path string) *corev1.PersistentVolume {
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{corev1.LabelHostname: hostname},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				Local: &corev1.LocalVolumeSource{Path: path},
			},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{
					Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname},
				}}}},
			}},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimDelete,
			StorageClassName:              tarsv1beta1.StorageClassName,
		},
	}
	if node != "" {
		pv.Annotations = map[string]string{annProvisionedBy: "tserver-agent-" + node}
	}
	return pv
}

// denied fails unless err is the node restriction policy's refusal saying want.
func denied(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case err == nil:
		t.Errorf("allowed; want denied: %s", want)
	case !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "agent-node-restriction"):
		t.Errorf("error %v; want the node restriction policy's denial", err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("denied with %q; want a message saying %q", err, want)
	}
}

func allowed(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("denied: %v", err)
	}
}

// mergePatch is a JSON merge patch.
func mergePatch(patch string) client.Patch {
	return client.RawPatch(types.MergePatchType, []byte(patch))
}

// metadataPatch sets one label or annotation (field "labels" or "annotations").
func metadataPatch(field, key, value string) client.Patch {
	return mergePatch(fmt.Sprintf(`{"metadata":{%q:{%q:%q}}}`, field, key, value))
}

// TestAgentNodeRestriction checks, on a real API server with the rendered policy, role and
// binding, that the agent's service account writes only the volumes and claims of the node its
// token is bound to, however its ClusterRole reads.
func TestAgentNodeRestriction(t *testing.T) {
	c := cluster(t)
	ctx := context.Background()
	newClient := func(node string) client.Client {
		cl, err := client.New(c.agentConfig(node), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	// Node names differ from hostnames, as on some clouds; only the policy's rules for volumes
	// made without attribution rely on a hostname that is the node's name.
	node1, node2 := newClient("node-1"), newClient("node-2")
	under := func(dir string) string { return c.hostRoot + "/default/app.server/" + dir }

	t.Run("creates, changes and deletes the volumes of its node", func(t *testing.T) {
		pv := testVolume("own", "node-1", "host-1", under("own"))
		allowed(t, node1.Create(ctx, pv))
		allowed(t, node1.Patch(ctx, pv, mergePatch(`{"spec":{"claimRef":{"namespace":"default","name":"claim"}}}`)))
		pv.Status.Phase = corev1.VolumeBound
		allowed(t, node1.Status().Update(ctx, pv))
		allowed(t, node1.Delete(ctx, pv))
	})
	t.Run("creates no volume of another node", func(t *testing.T) {
		denied(t, node1.Create(ctx, testVolume("foreign", "node-2", "host-2", under("foreign"))),
			"may create only volumes annotated pv.kubernetes.io/provisioned-by: tserver-agent-node-1")
		unattributed := testVolume("unattributed", "", "node-1", under("unattributed"))
		denied(t, node1.Create(ctx, unattributed), "is not a volume of this node")
	})
	t.Run("pins its new volumes to the hostname they are labelled with", func(t *testing.T) {
		pv := testVolume("elsewhere", "node-1", "host-1", under("elsewhere"))
		pv.Spec.NodeAffinity.Required.NodeSelectorTerms[0].MatchExpressions[0].Values = []string{"host-2"}
		denied(t, node1.Create(ctx, pv), `must have the node affinity "kubernetes.io/hostname In [host-1]"`)
		pv = testVolume("anywhere", "node-1", "host-1", under("anywhere"))
		pv.Spec.NodeAffinity.Required.NodeSelectorTerms = append(pv.Spec.NodeAffinity.Required.NodeSelectorTerms,
			corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpExists,
			}}})
		denied(t, node1.Create(ctx, pv), "must have the node affinity")
	})
	t.Run("makes volumes only below the host root", func(t *testing.T) {
		// (A path with ".." the API server's own validation refuses.)
		for _, path := range []string{"/etc", c.hostRoot, c.hostRoot + "/./x", c.hostRoot + "-other/x"} {
			pv := testVolume("outside", "node-1", "host-1", path)
			denied(t, node1.Create(ctx, pv), "must be a local volume below "+c.hostRoot)
		}
	})
	t.Run("changes and deletes no volume of another node", func(t *testing.T) {
		pv := testVolume("theirs", "node-2", "host-2", under("theirs"))
		allowed(t, c.admin.Create(ctx, pv))
		want := "may change or delete only volumes annotated pv.kubernetes.io/provisioned-by: tserver-agent-node-1"
		denied(t, node1.Patch(ctx, pv, mergePatch(`{"spec":{"claimRef":{"namespace":"default","name":"claim"}}}`)), want)
		pv.Status.Phase = corev1.VolumeReleased
		denied(t, node1.Status().Update(ctx, pv), want)
		denied(t, node1.Delete(ctx, pv), want)
		allowed(t, node2.Delete(ctx, pv))
	})
	t.Run("keeps what makes a volume its node's", func(t *testing.T) {
		pv := testVolume("kept", "node-1", "host-1", under("kept"))
		allowed(t, node1.Create(ctx, pv))
		want := "must keep its pv.kubernetes.io/provisioned-by annotation, kubernetes.io/hostname label, " +
			"node affinity and path"
		denied(t, node1.Patch(ctx, pv, metadataPatch("labels", corev1.LabelHostname, "host-2")), want)
		denied(t, node1.Patch(ctx, pv, metadataPatch("annotations", annProvisionedBy, "tserver-agent-node-2")), want)
		// The API server's StorageObjectInUseProtection gave it the finalizer.
		if !strings.Contains(strings.Join(pv.Finalizers, ","), "kubernetes.io/pv-protection") {
			t.Fatalf("volume has no kubernetes.io/pv-protection finalizer: %v", pv.Finalizers)
		}
		denied(t, node1.Patch(ctx, pv, mergePatch(`{"metadata":{"finalizers":null}}`)),
			"must keep its kubernetes.io/pv-protection finalizer")
		allowed(t, node1.Delete(ctx, pv))
	})
	t.Run("changes and deletes volumes made without attribution by their hostname label", func(t *testing.T) {
		ours := testVolume("tarsk8s-node-1", "", "node-1", under("tarsk8s-1"))
		theirs := testVolume("tarsk8s-node-2", "", "node-2", under("tarsk8s-2"))
		allowed(t, c.admin.Create(ctx, ours))
		allowed(t, c.admin.Create(ctx, theirs))
		allowed(t, node1.Patch(ctx, ours, mergePatch(`{"spec":{"claimRef":{"namespace":"default","name":"claim"}}}`)))
		denied(t, node1.Patch(ctx, ours, metadataPatch("annotations", annProvisionedBy, "tserver-agent-node-1")),
			"must keep its pv.kubernetes.io/provisioned-by annotation")
		allowed(t, node1.Delete(ctx, ours))
		denied(t, node1.Delete(ctx, theirs), "or without that annotation and labelled kubernetes.io/hostname: node-1")
	})
	t.Run("writes nothing with a token bound to no pod", func(t *testing.T) {
		unbound := newClient("")
		denied(t, unbound.Create(ctx, testVolume("unbound", "node-1", "host-1", under("unbound"))),
			"only a token bound to the agent's pod may write volumes, claims and nodes")
		claim := testClaim("unbound", "node-1")
		allowed(t, c.admin.Create(ctx, claim))
		denied(t, unbound.Patch(ctx, claim, mergePatch(`{"metadata":{"annotations":{"`+annSelectedNode+`":null}}}`)),
			"only a token bound to the agent's pod")
	})
	t.Run("hands back, labels and reports on claims, and does nothing else to them", func(t *testing.T) {
		theirs, ours := testClaim("theirs", "node-2"), testClaim("ours", "node-1")
		allowed(t, c.admin.Create(ctx, theirs))
		allowed(t, c.admin.Create(ctx, ours))
		handBack := mergePatch(`{"metadata":{"annotations":{"` + annSelectedNode + `":null}}}`)
		denied(t, node1.Patch(ctx, theirs, handBack),
			`is not scheduled onto this node (volume.kubernetes.io/selected-node: "node-2")`)
		const others = "its spec, finalizers and other labels and annotations stay"
		denied(t, node1.Patch(ctx, ours, metadataPatch("annotations", tarsv1beta1.AnnotationLocalVolumeMode, "777")), others)
		denied(t, node1.Patch(ctx, ours, metadataPatch("labels", tarsv1beta1.LabelServerApp, "other")), others)
		denied(t, node1.Patch(ctx, ours, mergePatch(`{"metadata":{"finalizers":null}}`)), others)
		problem := metadataPatch("annotations", tarsv1beta1.AnnotationVolumeProblem, "directory missing")
		allowed(t, node1.Patch(ctx, ours, problem))
		refused := metadataPatch("annotations", tarsv1beta1.AnnotationProvisioningRefused, "node node-1: disk full")
		allowed(t, node1.Patch(ctx, ours, refused))
		allowed(t, node1.Patch(ctx, ours, handBack))
		allowed(t, node1.Patch(ctx, theirs, metadataPatch("labels", tarsv1beta1.LabelSelectedNode, "node-1")))
	})
	t.Run("marks only its own node's disk full, and does nothing else to nodes", func(t *testing.T) {
		for _, name := range []string{"node-1", "node-2"} {
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": "a"}}}
			allowed(t, c.admin.Create(ctx, n))
		}
		own, other := &corev1.Node{}, &corev1.Node{}
		own.Name, other.Name = "node-1", "node-2"
		full := metadataPatch("labels", tarsv1beta1.LabelDiskFull, tarsv1beta1.DiskFullSpace)
		allowed(t, node1.Patch(ctx, own, full))
		allowed(t, node1.Patch(ctx, own, mergePatch(`{"metadata":{"labels":{"`+tarsv1beta1.LabelDiskFull+`":null}}}`)))
		denied(t, node1.Patch(ctx, other, full), "Node node-2 is not this node")
		const others = "may only get or lose the label tars.io/DiskFull"
		denied(t, node1.Patch(ctx, own, metadataPatch("labels", tarsv1beta1.LabelDiskFull, "yes")), others)
		denied(t, node1.Patch(ctx, own, metadataPatch("labels", tarsv1beta1.LabelSupportLocalVolume, "true")), others)
		denied(t, node1.Patch(ctx, own, mergePatch(`{"metadata":{"labels":{"team":null}}}`)), others)
		denied(t, node1.Patch(ctx, own, metadataPatch("annotations", "note", "x")), others)
		denied(t, node1.Patch(ctx, own, mergePatch(`{"spec":{"unschedulable":true}}`)), others)
		denied(t, newClient("").Patch(ctx, own, full), "only a token bound to the agent's pod")
	})
	t.Run("restricts no one else", func(t *testing.T) {
		allowed(t, c.admin.Create(ctx, testVolume("admins", "", "anywhere", "/srv/data")))
	})
}

// testClaim is a pending node-local claim of namespace default whose pod the scheduler put on node.
func testClaim(name, node string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "default",
			Labels: map[string]string{
				tarsv1beta1.LabelServerApp: "app", tarsv1beta1.LabelServerName: "server", tarsv1beta1.LabelLocalVolume: name,
			},
			Annotations: map[string]string{annSelectedNode: node, tarsv1beta1.AnnotationLocalVolumeMode: "755"},
		},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1G")},
			},
			StorageClassName: new(tarsv1beta1.StorageClassName),
		},
	}
}

// TestNodeRestrictionPolicyInStep checks the rendered node restriction policy is the one
// config/agent/node_restriction.yaml describes, for the agent's service account and host root
// (the Helm chart keeps a copy of its own), and its binding denies.
func TestNodeRestrictionPolicyInStep(t *testing.T) {
	objs := rendered(t)
	c := cluster(t)
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "agent", "node_restriction.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	source := strings.NewReplacer(
		"system:serviceaccount:system:agent", c.agentUser(),
		"'"+tarsv1beta1.DefaultHostRoot+"'", "'"+c.hostRoot+"'",
	).Replace(string(data))
	want := map[string]*unstructured.Unstructured{}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(source), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); err != nil {
			break
		}
		want[obj.GetKind()] = obj
	}
	for _, kind := range []string{"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"} {
		var got *unstructured.Unstructured
		for _, obj := range objs {
			if obj.GetKind() == kind && strings.HasSuffix(obj.GetName(), "agent-node-restriction") {
				got = obj
			}
		}
		if got == nil || want[kind] == nil {
			t.Fatalf("no %s agent-node-restriction rendered", kind)
		}
		if got.GetNamespace() != "" {
			t.Errorf("cluster-scoped %s has namespace %q", kind, got.GetNamespace())
		}
		wantSpec, gotSpec := want[kind].Object["spec"].(map[string]any), got.Object["spec"].(map[string]any)
		if kind == "ValidatingAdmissionPolicyBinding" {
			wantSpec["policyName"] = got.GetName() // the policy's and the binding's names are one
		}
		if diff := cmp.Diff(wantSpec, gotSpec); diff != "" {
			t.Errorf("rendered %s differs from config/agent/node_restriction.yaml (-want +got):\n%s", kind, diff)
		}
	}
}
