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

// Package compat says which Kubernetes releases the operator supports, and what the API server
// it talks to offers of the optional APIs it can do without.
package compat

import (
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/client-go/discovery"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// OldestMinor is the oldest Kubernetes minor release (1.x) the operator supports: the first
// with every API it cannot do without. CRD validation rules (CEL) are GA in 1.29;
// ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1, the agents' node restriction) and
// webhook match conditions (sparing the webhook most requests) in 1.30; service account tokens
// naming the node of their pod (which the node restriction reads) are on by default from 1.30.
const OldestMinor = 30

// NewestMinor is the newest minor release the operator is built and tested against.
const NewestMinor = 37

// Server is what the API server offers.
type Server struct {
	// Version is the API server's.
	Version *version.Version
	// MutatingAdmissionPolicy says whether admissionregistration.k8s.io/v1 serves
	// MutatingAdmissionPolicy (on by default from 1.36), which labels each node-local claim with
	// its node in the scheduler's own write; without it the manager labels the claims.
	MutatingAdmissionPolicy bool
}

// Probe asks the API server its version and whether it serves the optional APIs.
func Probe(d discovery.DiscoveryInterface) (Server, error) {
	info, err := d.ServerVersion()
	if err != nil {
		return Server{}, fmt.Errorf("reading the API server's version: %w", err)
	}
	v, err := version.ParseGeneric(info.GitVersion)
	if err != nil {
		return Server{}, fmt.Errorf("reading the API server's version %q: %w", info.GitVersion, err)
	}
	s := Server{Version: v}
	resources, err := d.ServerResourcesForGroupVersion("admissionregistration.k8s.io/v1")
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return Server{}, fmt.Errorf("reading the admissionregistration.k8s.io/v1 API: %w", err)
	default:
		s.MutatingAdmissionPolicy = slices.ContainsFunc(resources.APIResources, func(r metav1.APIResource) bool {
			return r.Name == "mutatingadmissionpolicies"
		})
	}
	return s, nil
}

// Supported says why the server is not a release the operator supports, or nil. Releases
// newer than NewestMinor are supported but untested, which Probe's caller may say.
func (s Server) Supported() error {
	if s.Version.Major() == 1 && s.Version.Minor() < OldestMinor {
		return fmt.Errorf("this cluster runs Kubernetes %s, older than the oldest release the operator "+
			"supports, 1.%d: it needs CRD validation rules, ValidatingAdmissionPolicy "+
			"(admissionregistration.k8s.io/v1) and webhook match conditions; upgrade the cluster", s.Version, OldestMinor)
	}
	return nil
}

// Tested says whether the server's minor release is one the operator is tested against.
func (s Server) Tested() bool {
	return s.Version.Major() == 1 && s.Version.Minor() >= OldestMinor && s.Version.Minor() <= NewestMinor
}

// ClaimLabelling is how node-local claims get their tars.io/SelectedNode label on this server:
// PathPolicy in the scheduler's own write, or PathManager, the manager's patch after it.
func (s Server) ClaimLabelling() string {
	if s.MutatingAdmissionPolicy {
		return PathPolicy
	}
	return PathManager
}

// The paths of ClaimLabelling.
const (
	PathPolicy  = "policy"
	PathManager = "manager"
)

// claimLabelling is 1 for the path the manager found claims labelled by.
var claimLabelling = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "tserver_claim_labelling_path",
	Help: "1 for how node-local claims get their tars.io/SelectedNode label on this cluster: path=policy, the " +
		"MutatingAdmissionPolicy in the scheduler's own write (Kubernetes 1.36 and later), or path=manager, " +
		"a patch of the manager's after it (one API write a claim).",
}, []string{"path"})

func init() { ctrlmetrics.Registry.MustRegister(claimLabelling) }

// Report exports which claim-labelling path the server takes.
func (s Server) Report() {
	for _, path := range []string{PathPolicy, PathManager} {
		v := 0.0
		if s.ClaimLabelling() == path {
			v = 1
		}
		claimLabelling.WithLabelValues(path).Set(v)
	}
}
