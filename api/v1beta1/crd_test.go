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
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// TestCRDSchemaMatchesGo keeps the generated CRD schema and the Go constants the webhook uses in
// step: markers cannot refer to constants, so the two are written twice.
func TestCRDSchemaMatchesGo(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "crd", "bases", "k8s.tars.io_tservers.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := yaml.UnmarshalStrict(data, crd); err != nil {
		t.Fatal(err)
	}
	if got := crd.Spec.Names.ShortNames; len(got) != 1 || got[0] != "ts" {
		t.Errorf("short names = %v, want [ts]", got)
	}
	root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	walk := func(path ...string) apiextensionsv1.JSONSchemaProps {
		s := *root
		for _, p := range path {
			if p == "[]" {
				s = *s.Items.Schema
				continue
			}
			next, ok := s.Properties[p]
			if !ok {
				t.Fatalf("schema has no %v", path)
			}
			s = next
		}
		return s
	}
	const spec = "spec"
	lv := []string{spec, "k8s", "mounts", "[]", "source", "tLocalVolume"}
	for _, tt := range []struct {
		path        []string
		pattern     string
		defaultJSON string
	}{
		{[]string{spec, "app"}, IdentifierPattern, ""},
		{[]string{spec, "server"}, IdentifierPattern, ""},
		{[]string{spec, "tars", "servants", "[]", "name"}, IdentifierPattern, ""},
		{[]string{spec, "normal", "ports", "[]", "name"}, IdentifierPattern, ""},
		{append(lv, "uid"), LocalVolumeIDPattern, `"` + DefaultLocalVolumeUID + `"`},
		{append(lv, "gid"), LocalVolumeIDPattern, `"` + DefaultLocalVolumeGID + `"`},
		{append(lv, "mode"), LocalVolumeModePattern, `"` + DefaultLocalVolumeMode + `"`},
	} {
		s := walk(tt.path...)
		if s.Pattern != tt.pattern {
			t.Errorf("%v: schema pattern %q, Go %q", tt.path, s.Pattern, tt.pattern)
		}
		if tt.defaultJSON != "" && (s.Default == nil || string(s.Default.Raw) != tt.defaultJSON) {
			t.Errorf("%v: schema default %v, Go %s", tt.path, s.Default, tt.defaultJSON)
		}
	}
	if replicas := walk(spec, "k8s", "replicas"); replicas.Maximum == nil || *replicas.Maximum != MaxReplicas {
		t.Errorf("spec.k8s.replicas: schema maximum %v, Go %d", replicas.Maximum, MaxReplicas)
	}
}
