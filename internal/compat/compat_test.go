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

package compat

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sversion "k8s.io/apimachinery/pkg/version"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
)

func server(gitVersion string, resources ...string) *fakediscovery.FakeDiscovery {
	d := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{},
		FakedServerVersion: &k8sversion.Info{GitVersion: gitVersion}}
	list := &metav1.APIResourceList{GroupVersion: "admissionregistration.k8s.io/v1"}
	for _, r := range resources {
		list.APIResources = append(list.APIResources, metav1.APIResource{Name: r})
	}
	d.Resources = []*metav1.APIResourceList{list}
	return d
}

func TestProbe(t *testing.T) {
	for _, tt := range []struct {
		name, gitVersion string
		resources        []string
		wantErr          string
		tested           bool
		path             string
	}{
		{name: "the newest", gitVersion: "v1.37.2", resources: []string{"validatingadmissionpolicies",
			"mutatingadmissionpolicies"}, tested: true, path: PathPolicy},
		{name: "the oldest, a vendor's build", gitVersion: "v1.30.14-gke.1200", resources: []string{
			"validatingadmissionpolicies"}, tested: true, path: PathManager},
		{name: "newer than tested", gitVersion: "v1.40.0", resources: []string{"mutatingadmissionpolicies"},
			path: PathPolicy},
		{name: "too old", gitVersion: "v1.29.6", path: PathManager,
			wantErr: "this cluster runs Kubernetes 1.29.6, older than the oldest release the operator supports, 1.30"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Probe(server(tt.gitVersion, tt.resources...))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Supported(); tt.wantErr == "" && err != nil || tt.wantErr != "" &&
				(err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Supported() = %v, want %q", err, tt.wantErr)
			}
			if s.Tested() != tt.tested || s.ClaimLabelling() != tt.path {
				t.Errorf("Tested() = %v, ClaimLabelling() = %q; want %v, %q", s.Tested(), s.ClaimLabelling(),
					tt.tested, tt.path)
			}
			s.Report()
			if got := testutil.ToFloat64(claimLabelling.WithLabelValues(tt.path)); got != 1 {
				t.Errorf("tserver_claim_labelling_path{path=%q} = %v, want 1", tt.path, got)
			}
		})
	}
	if _, err := Probe(server("not a version")); err == nil {
		t.Error("Probe() of a server whose version is not one: no error")
	}
}
