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
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestClaimsPending: a TServer's Pending claims are counted (not those bound, lost or being
// deleted), and a TServer with none has no series.
func TestClaimsPending(t *testing.T) {
	key := types.NamespacedName{Namespace: "shop", Name: "tars-cart"}
	deleting := claimFor(logDir, 3, corev1.ClaimPending)
	deleting.DeletionTimestamp = new(metav1.Now())
	claims := []corev1.PersistentVolumeClaim{
		claimFor(logDir, 0, corev1.ClaimBound), claimFor(logDir, 1, corev1.ClaimPending),
		claimFor(logDir, 2, corev1.ClaimPending), deleting, claimFor(logDir, 4, corev1.ClaimLost),
	}
	setClaimsPending(key, claims)
	want := `
# HELP tserver_claims_pending Claims of a TServer that are Pending (no volume bound yet), as of its last reconcile; ` +
		`absent for a TServer with none.
# TYPE tserver_claims_pending gauge
tserver_claims_pending{namespace="shop",tserver="tars-cart"} 2
`
	if err := testutil.CollectAndCompare(claimsPending, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	setClaimsPending(key, claims[:1])
	if n := testutil.CollectAndCount(claimsPending); n != 0 {
		t.Errorf("a TServer without pending claims has %d series, want none", n)
	}
}
