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
	"time"

	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// statusBatchPeriod is how long the changes of a TServer's claims and StatefulSet are gathered
// before it is reconciled: a rollout binds claims and readies pods one by one, and each would
// otherwise cost a reconcile and a status write (a custom resource's, several times the API
// server's work of a built-in object's). A TServer's own changes are not delayed.
const statusBatchPeriod = 2 * time.Second

// batched delays the requests of h by period; requests for a TServer already waiting are merged
// into that one (the work queue keeps the earliest time), so a burst makes one reconcile.
func batched(h handler.EventHandler, period time.Duration) handler.EventHandler {
	return batchingHandler{h: h, period: period}
}

type batchingHandler struct {
	h      handler.EventHandler
	period time.Duration
}

func (b batchingHandler) Create(ctx context.Context, e event.CreateEvent,
	q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.h.Create(ctx, e, delaying{q, b.period})
}

func (b batchingHandler) Update(ctx context.Context, e event.UpdateEvent,
	q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.h.Update(ctx, e, delaying{q, b.period})
}

func (b batchingHandler) Delete(ctx context.Context, e event.DeleteEvent,
	q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.h.Delete(ctx, e, delaying{q, b.period})
}

func (b batchingHandler) Generic(ctx context.Context, e event.GenericEvent,
	q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	b.h.Generic(ctx, e, delaying{q, b.period})
}

// delaying turns a queue's Add into AddAfter.
type delaying struct {
	workqueue.TypedRateLimitingInterface[reconcile.Request]
	period time.Duration
}

func (d delaying) Add(r reconcile.Request) { d.AddAfter(r, d.period) }
