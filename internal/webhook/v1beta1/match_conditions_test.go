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
	"reflect"
	"slices"
	"strings"
	"testing"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

const generatedMarkers = "zz_generated.webhooks.go"

// TestWebhookMarkers fails when the webhooks' markers are not what match_conditions.go makes of
// them; with UPDATE_GENERATED=1 (`make manifests`) it writes them.
func TestWebhookMarkers(t *testing.T) {
	want := `// Code generated from match_conditions.go by TestWebhookMarkers (make manifests). DO NOT EDIT.

package v1beta1

// The registrations of the TServer webhooks, which controller-gen reads into
// config/webhook/manifests.yaml; their match conditions come from match_conditions.go.
` + webhookMarkers()
	if os.Getenv("UPDATE_GENERATED") != "" {
		if err := os.WriteFile(generatedMarkers, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(generatedMarkers)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is not what match_conditions.go makes: run make manifests", generatedMarkers)
	}
}

// TestEveryFieldDecidesTheWebhook fails when a field of a TServer's spec or spec.k8s is neither
// restated in sparedCreate nor checked in full by the schema (schemaChecked): a new field must
// say whether a create that carries it may skip the validating webhook.
func TestEveryFieldDecidesTheWebhook(t *testing.T) {
	known := slices.Clone(schemaChecked)
	for _, entry := range sparedCreate {
		known = append(known, strings.Split(entry.part, ", ")...)
	}
	check := func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !slices.Contains(known, prefix+name) {
				t.Errorf("%s%s is neither in sparedCreate nor in schemaChecked (match_conditions.go)", prefix, name)
			}
		}
	}
	check("spec.", reflect.TypeFor[tarsv1beta1.TServerSpec]())
	check("spec.k8s.", reflect.TypeFor[tarsv1beta1.TServerK8S]())
	for _, part := range known {
		if strings.Count(part, ".") > 2 || !strings.HasPrefix(part, "spec.") && part != "metadata.name" {
			t.Errorf("%s: sparedCreate and schemaChecked name fields of spec or spec.k8s", part)
		}
	}
}
