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

package controller

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/expand"
)

const (
	// maxFuzzMounts is the schema's limit of spec.k8s.mounts: the controller sees no more.
	maxFuzzMounts = 64
	// maxConditionMessage is the longest message metav1.Condition's schema accepts: a longer
	// one would make every status write of the TServer fail.
	maxConditionMessage = 32768
)

// fuzzSeeds adds every TServer sample, valid and invalid, with replica counts from none to
// more than the schema allows, as the scale subresource or an object stored before the cap
// may bring them.
func fuzzSeeds(f *testing.F, add func(ts []byte, replicas int32)) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "*.yaml"))
	invalid, _ := filepath.Glob(filepath.Join("..", "..", "config", "samples", "invalid", "*.yaml"))
	for _, file := range append(files, invalid...) {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			f.Fatal(err)
		}
		for _, replicas := range []int32{2, 0, -1, tarsv1beta1.MaxReplicas + 1, 2_000_000_000, math.MaxInt32} {
			add(js, replicas)
		}
	}
}

// fuzzTServer decodes a TServer, as the controller may get it: at most the schema's mounts.
func fuzzTServer(data []byte, replicas int32) (*tarsv1beta1.TServer, bool) {
	ts := &tarsv1beta1.TServer{}
	if json.Unmarshal(data, ts) != nil || len(ts.Spec.K8S.Mounts) > maxFuzzMounts {
		return nil, false
	}
	ts.Spec.K8S.Replicas = replicas
	return ts, true
}

// FuzzBuildStatefulSet feeds arbitrary TServers through what the controller makes of them: the
// StatefulSet, its claim templates, its spec hash and the Service. None may panic; the
// StatefulSet asks for the TServer's replicas (none without a release) and has one claim
// template per tLocalVolume or claim template mount, plus delay-bind.
func FuzzBuildStatefulSet(f *testing.F) {
	fuzzSeeds(f, func(ts []byte, replicas int32) { f.Add(ts, replicas) })
	f.Fuzz(func(t *testing.T, data []byte, replicas int32) {
		ts, ok := fuzzTServer(data, replicas)
		if !ok {
			return
		}
		sts := expand.StatefulSet(ts)
		want := replicas
		if ts.Spec.Release == nil {
			want = 0
		}
		if *sts.Spec.Replicas != want {
			t.Fatalf("StatefulSet replicas %d, want %d", *sts.Spec.Replicas, want)
		}
		if n := len(sts.Spec.VolumeClaimTemplates); n > len(ts.Spec.K8S.Mounts)+1 {
			t.Fatalf("%d claim templates for %d mounts", n, len(ts.Spec.K8S.Mounts))
		}
		if _, err := specHash(sts); err != nil {
			t.Fatalf("specHash: %v", err)
		}
		if mustRecreate(sts, expand.StatefulSet(ts)) {
			t.Fatal("the same TServer built twice must not recreate its StatefulSet")
		}
		expand.Service(ts)
	})
}

// FuzzComputeStatus feeds arbitrary TServers, replica counts and claims through the status a
// reconcile computes. It may not panic; its messages stay within what a condition may hold;
// and its work follows the claims that exist, not the replica count: a TServer scaled to two
// billion costs what one scaled to one costs, give or take its claims.
// Each three bytes of claims make one claim: its template, its ordinal and flags (bound,
// scheduled, a node agent's problem report, being deleted, a name of no replica).
func FuzzComputeStatus(f *testing.F) {
	fuzzSeeds(f, func(ts []byte, replicas int32) {
		f.Add(ts, replicas, []byte{0, 0, 1, 0, 1, 2, 0, 2, 4, 1, 255, 5, 0, 3, 8, 0, 4, 16})
	})
	f.Fuzz(func(t *testing.T, data []byte, replicas int32, claimBytes []byte) {
		ts, ok := fuzzTServer(data, replicas)
		if !ok {
			return
		}
		templates := expand.ClaimTemplates(ts)
		claims := fuzzClaims(ts, templates, claimBytes)
		o := &observed{statefulSet: expand.StatefulSet(ts), claims: claims}

		var status tarsv1beta1.TServerStatus
		allocs := testing.AllocsPerRun(1, func() { status = computeStatus(ts, o) })
		for _, c := range status.Conditions {
			if len(c.Message) > maxConditionMessage {
				t.Fatalf("condition %s has a message of %d bytes", c.Type, len(c.Message))
			}
		}
		one := ts.DeepCopy()
		one.Spec.K8S.Replicas = 1
		oneObserved := &observed{statefulSet: expand.StatefulSet(one), claims: claims}
		base := testing.AllocsPerRun(1, func() { computeStatus(one, oneObserved) })
		if limit := base + 100 + 4*float64(len(claims)); allocs > limit {
			t.Fatalf("computeStatus allocated %.0f times for %d replicas and %d claims, %.0f for 1 replica",
				allocs, replicas, len(claims), base)
		}
	})
}

// fuzzClaims makes claims of ts from fuzzed bytes, three a claim (at most 256 claims).
func fuzzClaims(ts *tarsv1beta1.TServer, templates []corev1.PersistentVolumeClaim,
	b []byte) []corev1.PersistentVolumeClaim {
	var claims []corev1.PersistentVolumeClaim
	for i := 0; i+2 < len(b) && len(claims) < 256; i += 3 {
		template, ordinal, flags := int(b[i]), int(b[i+1]), b[i+2]
		volume := fmt.Sprintf("volume%d", template)
		if len(templates) > 0 {
			volume = templates[template%len(templates)].Name
		}
		if ordinal == 255 {
			ordinal = math.MaxInt32
		}
		pvc := corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
			Name:        fmt.Sprintf("%s-%s-%d", volume, ts.Name, ordinal),
			Labels:      map[string]string{tarsv1beta1.LabelLocalVolume: volume},
			Annotations: map[string]string{},
		}}
		if flags&1 != 0 {
			pvc.Status.Phase, pvc.Spec.VolumeName = corev1.ClaimBound, "pv"
		}
		if flags&2 != 0 {
			pvc.Annotations["volume.kubernetes.io/selected-node"] = fmt.Sprintf("node-%d", flags)
		}
		if flags&4 != 0 {
			pvc.Annotations[tarsv1beta1.AnnotationVolumeProblem] = fmt.Sprintf("directory of %s is missing", pvc.Name)
		}
		if flags&8 != 0 {
			pvc.DeletionTimestamp = new(metav1.Now())
		}
		if flags&16 != 0 {
			pvc.Name += "x"
		}
		claims = append(claims, pvc)
	}
	return claims
}
