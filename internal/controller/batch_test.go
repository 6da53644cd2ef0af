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
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestBatchedMergesABurstIntoOneDelayedRequest(t *testing.T) {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	const period = 200 * time.Millisecond
	h := batched(handler.EnqueueRequestsFromMapFunc(tserverOfLabels), period)
	claim := func(i int) *corev1.PersistentVolumeClaim {
		return &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{
			Namespace: "default", Name: "remote-log-dir-tars-tarslog-" + string(rune('0'+i)),
			Labels: map[string]string{"tars.io/ServerApp": "tars", "tars.io/ServerName": "tarslog"},
		}}
	}
	start := time.Now()
	h.Create(context.Background(), event.CreateEvent{Object: claim(0)}, q)
	for i := range 3 {
		h.Update(context.Background(), event.UpdateEvent{ObjectOld: claim(i), ObjectNew: claim(i)}, q)
	}
	if n := q.Len(); n != 0 && time.Since(start) < period {
		t.Fatalf("%d requests ready at once, want them held for %s", n, period)
	}
	got, _ := q.Get()
	if waited := time.Since(start); waited < period {
		t.Errorf("request ready after %s, want at least %s", waited, period)
	}
	want := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "default", Name: "tars-tarslog"}}
	if got != want {
		t.Errorf("got request %v, want %v", got, want)
	}
	q.Done(got)
	time.Sleep(period)
	if n := q.Len(); n != 0 {
		t.Errorf("%d more requests after the first, want the burst merged into one", n)
	}
}
