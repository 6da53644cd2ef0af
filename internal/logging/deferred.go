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

// Package logging holds what the operator's processes add to their loggers.
package logging

import (
	"slices"

	"github.com/go-logr/logr"
)

// DeferValues returns a logger that logs as l does, but keeps the key/value pairs that
// WithValues gives it until a line is logged, rather than have l's sink take them at once.
//
// controller-runtime gives every reconcile a logger with the controller's and the object's
// names and a reconcile ID, and zap encodes such values as they are given: most reconciles log
// nothing, and that encoding was a twentieth of a node agent's CPU in a rollout (`make bench`
// scenario 8). Deferred, the values cost a slice; a line logged costs what it did, and says the
// same.
func DeferValues(l logr.Logger) logr.Logger {
	sink := l.GetSink()
	if sink == nil {
		return l
	}
	if cd, ok := sink.(logr.CallDepthLogSink); ok {
		sink = cd.WithCallDepth(1) // deferredSink's own frame, between logr.Logger and sink
	}
	return logr.New(&deferredSink{sink: sink})
}

// deferredSink is a logr.LogSink that hands the values it is given to sink only with a line.
type deferredSink struct {
	sink   logr.LogSink
	values []any
}

// Init does nothing: sink was initialised by the logger it came from.
func (d *deferredSink) Init(logr.RuntimeInfo) {}

func (d *deferredSink) Enabled(level int) bool { return d.sink.Enabled(level) }

func (d *deferredSink) Info(level int, msg string, keysAndValues ...any) {
	d.withValues().Info(level, msg, keysAndValues...)
}

func (d *deferredSink) Error(err error, msg string, keysAndValues ...any) {
	d.withValues().Error(err, msg, keysAndValues...)
}

func (d *deferredSink) WithValues(keysAndValues ...any) logr.LogSink {
	// Clipped: two loggers made from this one never share the appended part.
	return &deferredSink{sink: d.sink, values: append(slices.Clip(d.values), keysAndValues...)}
}

func (d *deferredSink) WithName(name string) logr.LogSink {
	return &deferredSink{sink: d.sink.WithName(name), values: d.values}
}

func (d *deferredSink) WithCallDepth(depth int) logr.LogSink {
	cd, ok := d.sink.(logr.CallDepthLogSink)
	if !ok {
		return d
	}
	return &deferredSink{sink: cd.WithCallDepth(depth), values: d.values}
}

// withValues is sink with the values given so far.
func (d *deferredSink) withValues() logr.LogSink {
	if len(d.values) == 0 {
		return d.sink
	}
	return d.sink.WithValues(d.values...)
}
