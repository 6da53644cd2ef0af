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
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// FuzzValidateTServer feeds arbitrary TServer JSON through defaulting and validation. Neither may
// panic; defaulting leaves no tLocalVolume field empty; a TServer that validates has only
// well-formed local volumes, no hostPath that reaches the host root and at most MaxReplicas;
// and an update that changes nothing is always allowed.
// The seed corpus is every sample, valid and invalid; `make test` runs it, `make fuzz` explores.
func FuzzValidateTServer(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "config", "samples", "*.yaml"))
	invalidFiles, _ := filepath.Glob(filepath.Join("..", "..", "..", "config", "samples", "invalid", "*.yaml"))
	for _, file := range append(files, invalidFiles...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
	}
	f.Add([]byte(`{"spec":{"k8s":{"mounts":[{"source":{"tLocalVolume":{}}}]}}}`))
	f.Add([]byte(`{"spec":{"subType":"normal","normal":{"ports":[{"name":"a","port":-1}]},` +
		`"k8s":{"hostPorts":[{"nameRef":""}]}}}`))
	f.Add([]byte(`{"metadata":{"name":"a-b"},"spec":{"app":"a","server":"b","subType":"normal","normal":{},` +
		`"k8s":{"replicas":2000000000,"mounts":[{"name":"h","mountPath":"/h",` +
		`"source":{"hostPath":{"path":"/usr/local/app/tars/host-mount/../host-mount/x"}}}]}}}`))

	id := regexp.MustCompile(tarsv1beta1.LocalVolumeIDPattern)
	mode := regexp.MustCompile(tarsv1beta1.LocalVolumeModePattern)
	f.Fuzz(func(t *testing.T, data []byte) {
		ts := &tarsv1beta1.TServer{}
		if json.Unmarshal(data, ts) != nil {
			return
		}
		DefaultTServer(ts)
		for _, m := range ts.Spec.K8S.Mounts {
			if lv := m.Source.TLocalVolume; lv != nil && (lv.UID == "" || lv.GID == "" || lv.Mode == "") {
				t.Fatalf("defaulting left an empty field: %+v", lv)
			}
		}
		if errs := ValidateTServer(ts); len(errs) == 0 {
			for _, m := range ts.Spec.K8S.Mounts {
				lv := m.Source.TLocalVolume
				if lv != nil && (!id.MatchString(lv.UID) || !id.MatchString(lv.GID) || !mode.MatchString(lv.Mode)) {
					t.Fatalf("accepted a malformed local volume: %+v", lv)
				}
				if hp := m.Source.HostPath; hp != nil {
					if p := path.Clean(hp.Path); p == "/" || strings.HasPrefix(tarsv1beta1.DefaultHostRoot+"/", p+"/") ||
						strings.HasPrefix(p, tarsv1beta1.DefaultHostRoot+"/") {
						t.Fatalf("accepted a hostPath that reaches the host root: %q", hp.Path)
					}
				}
			}
			if ts.Spec.K8S.Replicas > tarsv1beta1.MaxReplicas {
				t.Fatalf("accepted %d replicas", ts.Spec.K8S.Replicas)
			}
		}
		if errs := ValidateTServerUpdate(ts, ts.DeepCopy()); len(errs) > 0 {
			t.Fatalf("an update that changes nothing was refused: %v", errs)
		}
	})
}
