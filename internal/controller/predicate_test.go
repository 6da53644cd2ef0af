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
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// TestTServerChanged: a TServer deleted and created again while the manager's watch was broken
// reaches it as an update at the same generation, and must be reconciled; a status write must not.
func TestTServerChanged(t *testing.T) {
	ts := func(uid string, generation int64) *tarsv1beta1.TServer {
		return &tarsv1beta1.TServer{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns",
			UID: types.UID(uid), Generation: generation}}
	}
	for _, tt := range []struct {
		name     string
		old, new *tarsv1beta1.TServer
		want     bool
	}{
		{"status or metadata only", ts("a", 2), ts("a", 2), false},
		{"spec changed", ts("a", 2), ts("a", 3), true},
		{"replaced, same generation", ts("a", 2), ts("b", 2), true},
		{"replaced, lower generation", ts("a", 2), ts("b", 1), true},
	} {
		if got := tserverChanged.Update(event.UpdateEvent{ObjectOld: tt.old, ObjectNew: tt.new}); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	if !tserverChanged.Create(event.CreateEvent{Object: ts("a", 1)}) ||
		!tserverChanged.Delete(event.DeleteEvent{Object: ts("a", 1)}) {
		t.Error("creations and deletions must pass")
	}
}
