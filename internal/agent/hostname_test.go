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

package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// nodeServer answers reads of Node node-1 with the statuses of answers in turn (the last one
// for good), a 200 being the node labelled with hostname h-1; it counts the reads.
func nodeServer(t *testing.T, answers ...int) (*rest.Config, *atomic.Int32) {
	t.Helper()
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(reads.Add(1))
		code := answers[min(n, len(answers))-1]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		var body any = &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status: metav1.StatusFailure, Code: int32(code), Reason: metav1.StatusReason(http.StatusText(code))}
		if code == http.StatusOK {
			body = &corev1.Node{TypeMeta: metav1.TypeMeta{Kind: "Node", APIVersion: "v1"},
				ObjectMeta: metav1.ObjectMeta{Name: "node-1", Labels: map[string]string{corev1.LabelHostname: "h-1"}}}
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	t.Cleanup(srv.Close)
	return &rest.Config{Host: srv.URL}, &reads
}

// TestHostnameGivesUpOnRefusedCredentials: an agent whose credentials the API server refuses, or
// that stays forbidden to read its node, exits with that reason rather than waiting 5 minutes
// for a node "not found"; an unregistered node, and a forbidden read that is soon allowed, are
// waited for.
func TestHostnameGivesUpOnRefusedCredentials(t *testing.T) {
	const patience = 2 * time.Second
	// Without the checks, the agent would wait 5 minutes: fail long before.
	timeout := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
		t.Cleanup(cancel)
		return ctx
	}

	t.Run("401 at once", func(t *testing.T) {
		cfg, reads := nodeServer(t, http.StatusUnauthorized)
		_, err := hostname(timeout(t), cfg, "node-1", patience)
		if err == nil || !strings.Contains(err.Error(), "401 Unauthorized") || reads.Load() != 1 {
			t.Errorf("after %d reads: %v; want the refused credentials named after one read", reads.Load(), err)
		}
	})
	t.Run("403 for longer than the patience", func(t *testing.T) {
		cfg, reads := nodeServer(t, http.StatusForbidden)
		start := time.Now()
		_, err := hostname(timeout(t), cfg, "node-1", patience)
		if err == nil || !strings.Contains(err.Error(), "403 Forbidden") || !strings.Contains(err.Error(), "ClusterRole") {
			t.Errorf("%v; want the forbidden read of the node named", err)
		}
		if took := time.Since(start); took < patience || reads.Load() < 2 {
			t.Errorf("gave up after %s and %d reads; want at least %s and several reads", took, reads.Load(), patience)
		}
	})
	t.Run("403 then allowed", func(t *testing.T) {
		cfg, _ := nodeServer(t, http.StatusForbidden, http.StatusOK)
		if h, err := hostname(timeout(t), cfg, "node-1", patience); err != nil || h != "h-1" {
			t.Errorf("hostname %q, %v; want h-1", h, err)
		}
	})
	t.Run("404 waited for", func(t *testing.T) {
		cfg, reads := nodeServer(t, http.StatusNotFound, http.StatusNotFound, http.StatusOK)
		if h, err := hostname(timeout(t), cfg, "node-1", patience); err != nil || h != "h-1" || reads.Load() != 3 {
			t.Errorf("hostname %q, %v after %d reads; want h-1 after 3", h, err, reads.Load())
		}
	})
}
