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

package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	uberzap "go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// logged runs log with a deferred JSON zap logger at verbosity 1 and returns the lines it wrote.
func logged(t *testing.T, log func(logr.Logger)) []map[string]any {
	t.Helper()
	var out bytes.Buffer
	log(DeferValues(zap.New(zap.WriteTo(&out), zap.Level(zapcore.Level(-1)), zap.RawZapOpts(uberzap.AddCaller()))))
	var lines []map[string]any
	for line := range strings.Lines(out.String()) {
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		lines = append(lines, fields)
	}
	return lines
}

func TestDeferValuesLogsWhatTheLoggerWouldHave(t *testing.T) {
	lines := logged(t, func(l logr.Logger) {
		base := l.WithName("agent").WithValues("node", "node-1")
		reconcile := base.WithValues("pvc", "ns/a").WithName("claim")
		other := base.WithValues("pvc", "ns/b") // base's values are not shared with reconcile's
		reconcile.Info("Provisioned", "pv", "v1")
		other.Error(errors.New("boom"), "Failed")
		base.V(1).Info("Verbose")
		base.V(2).Info("Too verbose")
		l.Info("Bare")
	})
	want := []map[string]any{
		{"logger": "agent.claim", "msg": "Provisioned", "node": "node-1", "pvc": "ns/a", "pv": "v1"},
		{"logger": "agent", "msg": "Failed", "node": "node-1", "pvc": "ns/b", "error": "boom"},
		{"logger": "agent", "msg": "Verbose", "node": "node-1"},
		{"msg": "Bare"},
	}
	if len(lines) != len(want) {
		t.Fatalf("logged %d lines, want %d: %v", len(lines), len(want), lines)
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (line %v)", i, k, lines[i][k], v, lines[i])
			}
		}
		if _, named := lines[i]["logger"]; !named && w["logger"] != nil || named && w["logger"] == nil {
			t.Errorf("line %d: logger %v, want %v", i, lines[i]["logger"], w["logger"])
		}
	}
}

func TestDeferValuesNamesTheCaller(t *testing.T) {
	lines := logged(t, func(l logr.Logger) {
		l.WithValues("k", "v").Info("here")
		helper(l.WithValues("k", "v"))
	})
	if len(lines) != 2 {
		t.Fatalf("logged %d lines, want 2", len(lines))
	}
	for i, line := range lines {
		caller, _ := line["caller"].(string)
		if !strings.Contains(caller, "deferred_test.go") {
			t.Errorf("line %d: caller %q, want this file", i, caller)
		}
	}
	if lines[0]["caller"] == lines[1]["caller"] {
		t.Errorf("both lines name caller %v", lines[0]["caller"])
	}
}

// helper logs as one frame below its caller, through WithCallDepth.
func helper(l logr.Logger) {
	l.WithCallDepth(1).Info("from the helper")
}

// countingSink counts the values its loggers were given, and logs nothing.
type countingSink struct{ values *int }

func (c countingSink) Init(logr.RuntimeInfo)             {}
func (c countingSink) Enabled(int) bool                  { return true }
func (c countingSink) Info(int, string, ...any)          {}
func (c countingSink) Error(error, string, ...any)       {}
func (c countingSink) WithName(string) logr.LogSink      { return c }
func (c countingSink) WithValues(kv ...any) logr.LogSink { *c.values += len(kv) / 2; return c }

func TestDeferValuesHandsValuesOnlyWithALine(t *testing.T) {
	var values int
	l := DeferValues(logr.New(countingSink{values: &values}))
	for range 100 {
		_ = l.WithValues("controller", "claim", "reconcileID", "1").WithName("agent").WithValues("pvc", "ns/a")
	}
	if values != 0 {
		t.Fatalf("%d values handed to the sink by loggers that logged nothing, want 0", values)
	}
	l.WithValues("controller", "claim").WithValues("pvc", "ns/a").Info("a line")
	if values != 2 {
		t.Errorf("%d values handed to the sink with a line, want 2", values)
	}
}
