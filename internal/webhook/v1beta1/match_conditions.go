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
	"bytes"
	"encoding/json"
	"strings"
)

// The webhooks' match conditions: CEL the API server evaluates to decide whether to call a
// webhook at all. They are the only place where rules of this package are restated. This file
// assembles them; the +kubebuilder:webhook markers that carry them (zz_generated.webhooks.go)
// are generated from it by `make manifests`, and a test fails when the two differ.

// sparedCreate says, part by part of a TServer, when a create is valid without the validating
// webhook: each part either meets the CEL that restates ValidateTServer's rules for it, or is
// in schemaChecked. A create that meets every entry is spared the webhook's round trip; any
// other create, and every update, goes to it.
//
// Where the CEL restates a rule, it sits in tserver_validation.go beside the Go function that
// checks it (sparedName above validateName, sparedMounts above validateMounts, ...), so that a
// rule is added or changed in one place, Go and CEL together. The other parts are spared only
// when absent or empty: a rule on them needs no CEL at all. A test fails when a field of the
// TServer type is in neither list, and the webhook suite sends every case of ValidateTServer's
// tests to a real API server and fails if an invalid one is stored without the webhook.
var sparedCreate = []struct {
	part, rules string // the spec field(s), and the functions of ValidateTServer that check them
	cel         []string
}{
	{"metadata.name, spec.app, spec.server, spec.subType", "validateName, validateIdentifier", sparedName},
	{"spec.tars", "validateEndpoints", sparedEndpoints[:1]},
	{"spec.normal", "validateEndpoints", sparedEndpoints[1:]},
	{"spec.release", "validateRelease", sparedRelease},
	{"spec.k8s", "validateK8S", []string{"has(object.spec.k8s)"}},
	{"spec.k8s.replicas", "validateK8S (replicas)", sparedReplicas},
	{"spec.k8s.serviceAccount", "dnsSubdomain", []string{empty("object.spec.k8s.serviceAccount", "''")}},
	{"spec.k8s.env", "validateEnv", sparedEnv},
	{"spec.k8s.envFrom", "validateEnvFrom", []string{empty("object.spec.k8s.envFrom", "")}},
	{"spec.k8s.hostPorts", "validateHostPorts", []string{empty("object.spec.k8s.hostPorts", "")}},
	{"spec.k8s.nodeSelector", "validateNodeSelectorRequirement", []string{empty("object.spec.k8s.nodeSelector", "")}},
	{"spec.k8s.readinessGates", "validateK8S (readiness gates)", []string{empty("object.spec.k8s.readinessGates", "")}},
	{"spec.k8s.resources", "validateResources", []string{"(!has(object.spec.k8s.resources) || (" +
		empty("object.spec.k8s.resources.requests", "") + " && " + empty("object.spec.k8s.resources.limits", "") + "))"}},
	{"spec.k8s.updateStrategy", "validateUpdateStrategy", sparedUpdateStrategy},
	{"spec.k8s.mounts", "validateMounts", sparedMounts},
}

// schemaChecked are the parts of a TServer's spec.k8s that the CRD's schema checks in full
// (types, enums, patterns): a create may carry them and still be spared the webhook.
var schemaChecked = []string{
	"spec.k8s.command", "spec.k8s.args", "spec.k8s.hostIPC", "spec.k8s.hostNetwork", "spec.k8s.notStacked",
	"spec.k8s.nodeLossPolicy", "spec.k8s.podManagementPolicy", "spec.k8s.imagePullPolicy",
}

// distinctEndpoint is the CEL for servant or port a of list: named, with a port in range, its
// name (ignoring case) and port unique in list.
func distinctEndpoint(list string) string {
	return "has(a.name) && has(a.port) && a.port >= 1 && a.port <= 65535 && " +
		list + ".filter(b, has(b.name) && b.name.lowerAscii() == a.name.lowerAscii()).size() == 1 && " +
		list + ".filter(b, has(b.port) && b.port == a.port).size() == 1"
}

// empty is the CEL for a field that is absent or empty: equal to zero when given, else of size 0.
func empty(fieldPath, zero string) string {
	if zero != "" {
		return "(!has(" + fieldPath + ") || " + fieldPath + " == " + zero + ")"
	}
	return "(!has(" + fieldPath + ") || size(" + fieldPath + ") == 0)"
}

// validatingMatchCondition sends to the validating webhook every update and every create that
// sparedCreate does not show valid.
func validatingMatchCondition() string {
	var clauses []string
	for _, entry := range sparedCreate {
		clauses = append(clauses, entry.cel...)
	}
	return "request.operation != 'CREATE' || !(" + strings.Join(clauses, " && ") + ")"
}

// defaultingMatchCondition sends to the mutating webhook only a TServer with a tLocalVolume whose
// uid, gid or mode is empty or (without the CRD's defaults, which the API server applies first)
// missing. Each step checks the type it goes into, so that a malformed object reaches schema
// validation and its message.
const defaultingMatchCondition = "has(object.spec) && type(object.spec) == map && has(object.spec.k8s) && " +
	"type(object.spec.k8s) == map && has(object.spec.k8s.mounts) && type(object.spec.k8s.mounts) == list && " +
	"object.spec.k8s.mounts.exists(m, type(m) == map && has(m.source) && type(m.source) == map && " +
	"has(m.source.tLocalVolume) && type(m.source.tLocalVolume) == map && " +
	"['uid', 'gid', 'mode'].exists(f, !(f in m.source.tLocalVolume) || m.source.tLocalVolume[f] == ''))"

// webhookMarkers are the +kubebuilder:webhook markers of the two webhooks, with their match
// conditions, as zz_generated.webhooks.go holds them.
func webhookMarkers() string {
	const common = "failurePolicy=fail,sideEffects=None,groups=k8s.tars.io,resources=tservers,verbs=create;update," +
		"versions=v1beta1,admissionReviewVersions=v1,timeoutSeconds=10"
	marker := func(path string, mutating bool, name, condition, expression string) string {
		var patch bytes.Buffer
		enc := json.NewEncoder(&patch)
		enc.SetEscapeHTML(false)
		type matchCondition struct {
			Name       string `json:"name"`
			Expression string `json:"expression"`
		}
		_ = enc.Encode(map[string][]matchCondition{"matchConditions": {{condition, expression}}})
		kind := "false"
		if mutating {
			kind = "true"
		}
		return "// +kubebuilder:webhook:path=" + path + ",mutating=" + kind + "," + common + ",name=" + name +
			",patch=`" + strings.TrimSpace(patch.String()) + "`\n"
	}
	return marker("/mutate-k8s-tars-io-v1beta1-tserver", true, "mtserver-v1beta1.kb.io",
		"local-volume-needs-defaults", defaultingMatchCondition) +
		marker("/validate-k8s-tars-io-v1beta1-tserver", false, "vtserver-v1beta1.kb.io",
			"validation-needs-the-webhook", validatingMatchCondition())
}
