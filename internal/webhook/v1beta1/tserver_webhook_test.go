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
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

var tarslogKey = types.NamespacedName{Namespace: testNamespace, Name: "tars-tarslog"}

var samplesDir = filepath.Join("..", "..", "..", "config", "samples")

// unstructuredFrom decodes YAML as it is, so that empty strings reach the API server as sent.
func unstructuredFrom(doc string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal([]byte(doc), &u.Object)).To(Succeed())
	u.SetNamespace(testNamespace)
	return u
}

func sampleFile(name string) string {
	data, err := os.ReadFile(filepath.Join(samplesDir, name))
	Expect(err).NotTo(HaveOccurred())
	return string(data)
}

func localVolumeOf(key types.NamespacedName) *tarsv1beta1.TLocalVolume {
	ts := &tarsv1beta1.TServer{}
	Expect(k8sClient.Get(ctx, key, ts)).To(Succeed())
	Expect(ts.Spec.K8S.Mounts).NotTo(BeEmpty())
	return ts.Spec.K8S.Mounts[0].Source.TLocalVolume
}

const localVolumeServer = `
apiVersion: k8s.tars.io/v1beta1
kind: TServer
metadata:
  name: demo-volumes
spec:
  app: Demo
  server: Volumes
  subType: normal
  normal:
    ports: [{name: http, port: 8080}]
  k8s:
    mounts:
    - name: data
      mountPath: /data
      source:
        tLocalVolume: LOCAL_VOLUME
`

var _ = Describe("TServer admission through the API server", func() {
	AfterEach(func() {
		Expect(k8sClient.DeleteAllOf(ctx, &tarsv1beta1.TServer{}, client.InNamespace(testNamespace))).To(Succeed())
	})

	It("stores the seed's tarslog with its values", func() {
		Expect(k8sClient.Create(ctx, unstructuredFrom(sampleFile("tars-tarslog.yaml")))).To(Succeed())

		ts := &tarsv1beta1.TServer{}
		Expect(k8sClient.Get(ctx, tarslogKey, ts)).To(Succeed())
		Expect(ts.Spec.App).To(Equal("tars"))
		Expect(ts.Spec.Server).To(Equal("tarslog"))
		Expect(ts.Spec.K8S.Replicas).To(Equal(int32(2)))
		Expect(ts.Spec.K8S.Env).To(HaveLen(2))
		Expect(ts.Spec.K8S.Mounts).To(HaveLen(1))
		Expect(ts.Spec.K8S.Mounts[0].MountPath).To(Equal("/usr/local/app/tars/remote_app_log"))
		Expect(ts.Spec.K8S.Mounts[0].Source.TLocalVolume).To(Equal(
			&tarsv1beta1.TLocalVolume{UID: "1000", GID: "0", Mode: "755"}))
		By("filling the schema's defaults")
		Expect(ts.Spec.K8S.PodManagementPolicy).To(BeEquivalentTo("Parallel"))
		Expect(ts.Spec.K8S.ImagePullPolicy).To(BeEquivalentTo("IfNotPresent"))
	})

	It("stores the seed's tarsconfig", func() {
		Expect(k8sClient.Create(ctx, unstructuredFrom(sampleFile("tars-tarsconfig.yaml")))).To(Succeed())
	})

	DescribeTable("defaults a tLocalVolume's missing or empty fields",
		func(localVolume string, want tarsv1beta1.TLocalVolume) {
			u := unstructuredFrom(strings.Replace(localVolumeServer, "LOCAL_VOLUME", localVolume, 1))
			Expect(k8sClient.Create(ctx, u)).To(Succeed())
			Expect(localVolumeOf(types.NamespacedName{Namespace: testNamespace, Name: "demo-volumes"})).To(Equal(&want))
		},
		Entry("an empty object", "{}", tarsv1beta1.TLocalVolume{UID: "0", GID: "0", Mode: "755"}),
		Entry("empty strings", `{uid: "", gid: "", mode: ""}`, tarsv1beta1.TLocalVolume{UID: "0", GID: "0", Mode: "755"}),
		Entry("only a uid", `{uid: "1000"}`, tarsv1beta1.TLocalVolume{UID: "1000", GID: "0", Mode: "755"}),
		Entry("an empty mode", `{uid: "7", gid: "8", mode: ""}`, tarsv1beta1.TLocalVolume{UID: "7", GID: "8", Mode: "755"}),
	)

	// The mutating webhook's match condition looks into the object before schema validation
	// does: a malformed one must get the schema's message, not a failed condition.
	DescribeTable("leaves malformed tLocalVolumes to schema validation",
		func(localVolume, wantField string) {
			err := k8sClient.Create(ctx, unstructuredFrom(strings.Replace(localVolumeServer, "LOCAL_VOLUME", localVolume, 1)))
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(wantField))
			Expect(err.Error()).NotTo(ContainSubstring("match condition"))
		},
		Entry("a string", `"1000"`, "spec.k8s.mounts[0].source.tLocalVolume"),
		Entry("a number for uid", `{uid: 1000}`, "spec.k8s.mounts[0].source.tLocalVolume.uid"),
		Entry("a list", `[]`, "spec.k8s.mounts[0].source.tLocalVolume"),
	)

	It("rejects each invalid sample with its field path and stores nothing", func() {
		files, err := filepath.Glob(filepath.Join(samplesDir, "invalid", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(files).NotTo(BeEmpty())
		for _, file := range files {
			data, err := os.ReadFile(file)
			Expect(err).NotTo(HaveOccurred())
			expect := expectedField(data)
			Expect(expect).NotTo(BeEmpty(), file)

			u := unstructuredFrom(string(data))
			err = k8sClient.Create(ctx, u)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: want Invalid, got %v", file, err)
			Expect(err.Error()).To(ContainSubstring(expect+":"), file)

			Expect(apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(u), &tarsv1beta1.TServer{}))).
				To(BeTrue(), "%s was stored", file)
		}
	})

	It("reports every invalid field of one object together", func() {
		doc := strings.Replace(localVolumeServer, "LOCAL_VOLUME", `{uid: "-1", gid: "01", mode: "750"}`, 1)
		err := k8sClient.Create(ctx, unstructuredFrom(doc))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		for _, f := range []string{"uid", "gid", "mode"} {
			Expect(err.Error()).To(ContainSubstring("spec.k8s.mounts[0].source.tLocalVolume." + f + ": Invalid value"))
		}
	})

	It("rejects a change of app, server or subType", func() {
		Expect(k8sClient.Create(ctx, unstructuredFrom(sampleFile("tars-tarslog.yaml")))).To(Succeed())
		for path, change := range map[string]func(*tarsv1beta1.TServer){
			"spec.app":     func(ts *tarsv1beta1.TServer) { ts.Spec.App = "Tars" },
			"spec.server":  func(ts *tarsv1beta1.TServer) { ts.Spec.Server = "TarsLog" },
			"spec.subType": func(ts *tarsv1beta1.TServer) { ts.Spec.SubType = tarsv1beta1.SubTypeNormal },
		} {
			ts := &tarsv1beta1.TServer{}
			Expect(k8sClient.Get(ctx, tarslogKey, ts)).To(Succeed())
			change(ts)
			err := k8sClient.Update(ctx, ts)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "%s: got %v", path, err)
			Expect(err.Error()).To(ContainSubstring(path + ": Invalid value"))
		}
	})

	It("defaults and validates updates too", func() {
		Expect(k8sClient.Create(ctx, unstructuredFrom(sampleFile("tars-tarslog.yaml")))).To(Succeed())
		setLocalVolume := func(uid, mode string) error {
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(tarsv1beta1.GroupVersion.WithKind("TServer"))
			Expect(k8sClient.Get(ctx, tarslogKey, u)).To(Succeed())
			mounts, _, err := unstructured.NestedSlice(u.Object, "spec", "k8s", "mounts")
			Expect(err).NotTo(HaveOccurred())
			Expect(unstructured.SetNestedStringMap(mounts[0].(map[string]any), map[string]string{"uid": uid, "mode": mode},
				"source", "tLocalVolume")).To(Succeed())
			Expect(unstructured.SetNestedSlice(u.Object, mounts, "spec", "k8s", "mounts")).To(Succeed())
			return k8sClient.Update(ctx, u)
		}

		By("sending an empty mode and no gid, which come back defaulted")
		Expect(setLocalVolume("2000", "")).To(Succeed())
		Expect(localVolumeOf(tarslogKey)).To(Equal(&tarsv1beta1.TLocalVolume{UID: "2000", GID: "0", Mode: "755"}))

		By("refusing mode 750")
		err := setLocalVolume("2000", "750")
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.k8s.mounts[0].source.tLocalVolume.mode"))
	})

	It("spares the validating webhook only creates that are valid", func() {
		var spared []string
		for _, tc := range validationCases() {
			ts := tarslog()
			tc.mutate(ts)
			before := validatorCalls.Load()
			if err := k8sClient.Create(ctx, ts); err != nil {
				continue // refused, by the schema or the webhook
			}
			stored := &tarsv1beta1.TServer{}
			Expect(k8sClient.Get(ctx, tarslogKey, stored)).To(Succeed())
			if validatorCalls.Load() == before {
				spared = append(spared, tc.name)
				Expect(ValidateTServer(stored)).To(BeEmpty(), "%q was stored without the webhook", tc.name)
			}
			Expect(k8sClient.Delete(ctx, stored)).To(Succeed())
			Eventually(func() bool { return apierrors.IsNotFound(k8sClient.Get(ctx, tarslogKey, stored)) }).Should(BeTrue())
		}
		By(fmt.Sprintf("sparing it %d valid creates: %v", len(spared), spared))
		Expect(spared).To(ContainElements("seed tarslog", "uid gid mode at their bounds"))

		By("sending it every update")
		ts := tarslog()
		Expect(k8sClient.Create(ctx, ts)).To(Succeed())
		before := validatorCalls.Load()
		ts.Spec.K8S.Replicas = 3
		Expect(k8sClient.Update(ctx, ts)).To(Succeed())
		Expect(validatorCalls.Load()).To(Equal(before + 1))
	})

	It("scales through the scale subresource, as kubectl scale does", func() {
		Expect(k8sClient.Create(ctx, unstructuredFrom(sampleFile("tars-tarslog.yaml")))).To(Succeed())
		ts := &tarsv1beta1.TServer{}
		Expect(k8sClient.Get(ctx, tarslogKey, ts)).To(Succeed())

		scale := &autoscalingv1.Scale{}
		Expect(k8sClient.SubResource("scale").Get(ctx, ts, scale)).To(Succeed())
		Expect(scale.Spec.Replicas).To(Equal(int32(2)))
		scale.Spec.Replicas = 5
		Expect(k8sClient.SubResource("scale").Update(ctx, ts, client.WithSubResourceBody(scale))).To(Succeed())

		Expect(k8sClient.Get(ctx, tarslogKey, ts)).To(Succeed())
		Expect(ts.Spec.K8S.Replicas).To(Equal(int32(5)))

		By("refusing more than the cap, which the scale subresource cannot bypass")
		scale.Spec.Replicas = 2_000_000_000
		err := k8sClient.SubResource("scale").Update(ctx, ts, client.WithSubResourceBody(scale))
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.k8s.replicas"))
		Expect(k8sClient.Get(ctx, tarslogKey, ts)).To(Succeed())
		Expect(ts.Spec.K8S.Replicas).To(Equal(int32(5)))
	})

	It("keeps a TServer stored with more replicas than the cap editable, and lets it come down", func() {
		Expect(k8sClient.Create(ctx, unstructuredFrom(sampleFile("tars-tarslog.yaml")))).To(Succeed())
		ts := &tarsv1beta1.TServer{}
		Expect(k8sClient.Get(ctx, tarslogKey, ts)).To(Succeed())

		By("scaling it to 6000 while the CRD has no cap, as before it had one")
		setReplicasMaximum(nil)
		DeferCleanup(setReplicasMaximum, new(int64(tarsv1beta1.MaxReplicas)))
		scaleTo := func(replicas int32) error {
			return k8sClient.SubResource("scale").Update(ctx, ts, client.WithSubResourceBody(&autoscalingv1.Scale{
				ObjectMeta: metav1.ObjectMeta{Name: ts.Name, Namespace: ts.Namespace},
				Spec:       autoscalingv1.ScaleSpec{Replicas: replicas},
			}))
		}
		// The API server takes a moment to serve a changed schema.
		Eventually(func() error { return scaleTo(6000) }, 10*time.Second).Should(Succeed())
		setReplicasMaximum(new(int64(tarsv1beta1.MaxReplicas)))
		Eventually(func() bool { // a new object: an update leaving the count as it is would pass (ratcheting)
			probe := tarslog()
			probe.Spec.Server, probe.Name, probe.Spec.K8S.Replicas = "probe", "tars-probe", 6000
			return apierrors.IsInvalid(k8sClient.Create(ctx, probe, client.DryRunAll))
		}, 10*time.Second).Should(BeTrue(), "the cap is back")
		Expect(apierrors.IsInvalid(scaleTo(6001))).To(BeTrue(), "scaled above the cap")

		By("updating another field, through the webhook, with the count unchanged")
		Expect(k8sClient.Get(ctx, tarslogKey, ts)).To(Succeed())
		ts.Spec.Release.Image = "tarscloud/tars.tarslog:v2"
		Expect(k8sClient.Update(ctx, ts)).To(Succeed())
		By("writing its status, as the controller does")
		patch := client.MergeFrom(ts.DeepCopy())
		ts.Status.ObservedGeneration = ts.Generation
		Expect(k8sClient.Status().Patch(ctx, ts, patch)).To(Succeed())
		By("scaling it down under the cap")
		Expect(scaleTo(10)).To(Succeed())
	})
})

// setReplicasMaximum sets (or, nil, removes) the CRD schema's maximum of spec.k8s.replicas.
func setReplicasMaximum(maximum *int64) {
	op := `{"op":"remove","path":"` + replicasSchema + `/maximum"}`
	if maximum != nil {
		op = fmt.Sprintf(`{"op":"add","path":"%s/maximum","value":%d}`, replicasSchema, *maximum)
	}
	crd := &unstructured.Unstructured{}
	crd.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	crd.SetName("tservers." + tarsv1beta1.GroupVersion.Group)
	Expect(k8sClient.Patch(ctx, crd, client.RawPatch(types.JSONPatchType, []byte("["+op+"]")))).To(Succeed())
}

// replicasSchema is the JSON pointer of spec.k8s.replicas in the CRD's schema.
const replicasSchema = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/k8s/properties/replicas"
