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

package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// repo is a path in the repository; tests run in their package's directory.
func repo(elem ...string) string {
	return filepath.Join(append([]string{"..", ".."}, elem...)...)
}

func read(t *testing.T, elem ...string) []byte {
	t.Helper()
	data, err := os.ReadFile(repo(elem...))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestAlertsAreTestedAndDocumented checks every alert of config/prometheus/rules.yaml: what an
// operator reads when it fires (a severity, a summary, a description), a unit test in which it
// fires and one in which it stays silent (config/prometheus/tests), a section of
// docs/monitoring.md and a line of the README.
func TestAlertsAreTestedAndDocumented(t *testing.T) {
	groups, err := prometheusRuleGroups(read(t, "config", "prometheus", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []struct {
		Alert       string            `json:"alert"`
		For         string            `json:"for"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	}
	for _, g := range groups {
		data, err := yaml.Marshal(g["rules"])
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, &rules); err != nil {
			t.Fatal(err)
		}
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(read(t, "config", "prometheus", "tests", "alerts_test.yaml"), &tests); err != nil {
		t.Fatal(err)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, test := range tests.Tests {
		for _, a := range test.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	docs, readme := string(read(t, "docs", "monitoring.md")), string(read(t, "README.md"))
	seen := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("a rule is not an alert: %+v", r)
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s: two rules", r.Alert)
		}
		seen[r.Alert] = true
		if !slices.Contains([]string{"critical", "warning", "info"}, r.Labels["severity"]) {
			t.Errorf("alert %s: severity %q, want critical, warning or info", r.Alert, r.Labels["severity"])
		}
		if r.For == "" {
			t.Errorf("alert %s: no for: it would fire on a single evaluation", r.Alert)
		}
		if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
			t.Errorf("alert %s: no summary or description", r.Alert)
		}
		if !fires[r.Alert] || !silent[r.Alert] {
			t.Errorf("alert %s: config/prometheus/tests/alerts_test.yaml has no test where it fires (%t) or none "+
				"where it stays silent (%t)", r.Alert, fires[r.Alert], silent[r.Alert])
		}
		if !strings.Contains(docs, "\n### "+r.Alert+"\n") {
			t.Errorf("alert %s: no section in docs/monitoring.md", r.Alert)
		}
		if !strings.Contains(readme, "`"+r.Alert+"`") {
			t.Errorf("alert %s: not in the README's Monitoring", r.Alert)
		}
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("config/prometheus/tests/alerts_test.yaml tests alert %s, which rules.yaml does not have", name)
		}
	}
}

// TestDashboardShowsTheMetrics checks that the dashboard's queries turn into recording rules and
// that its panels show what the operator exports about volumes, nodes and node loss.
func TestDashboardShowsTheMetrics(t *testing.T) {
	groups, err := dashboardGroups(read(t, "config", "grafana", "tserver-operator.json"))
	if err != nil {
		t.Fatal(err)
	}
	rules := groups[0]["rules"].([]map[string]any)
	exprs := make([]string, 0, len(rules))
	for _, r := range rules {
		expr := r["expr"].(string)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a variable is left in %q", r["record"], expr)
		}
		exprs = append(exprs, expr)
	}
	all := strings.Join(exprs, "\n")
	for _, metric := range []string{
		"tserver_agent_volume_used_bytes", "tserver_agent_volume_used_inodes", "tserver_agent_host_root_bytes",
		"tserver_agent_host_root_inodes", "tserver_agent_disk_full", "tserver_claims_pending",
		"tserver_agent_errors_total", "tserver_agent_orphaned_directories", "tserver_agent_orphaned_directory_bytes",
		"tserver_agent_ownership_repairs_total", "tserver_node_loss_replicas_waiting",
		"tserver_node_loss_replicas_freed_total", "tserver_agent_usage_pass_seconds",
	} {
		if !strings.Contains(all, metric+"{") && !strings.Contains(all, metric+")") &&
			!strings.Contains(all, metric+"[") {
			t.Errorf("no panel shows %s", metric)
		}
	}
}

// TestDashboardGroupsRefuse checks that what would leave a panel without data fails the check.
func TestDashboardGroupsRefuse(t *testing.T) {
	const variables = `"templating": {"list": [
		{"name": "datasource", "type": "datasource", "query": "prometheus"},
		{"name": "node", "type": "query", "allValue": ".*"},
		{"name": "top", "type": "custom", "current": {"value": "10"}}]}`
	panel := func(id, uid, expr string) string {
		return `{"id": ` + id + `, "type": "timeseries", "title": "p` + id + `", "datasource": {"uid": "` + uid +
			`"}, "targets": [{"refId": "A", "expr": ` + expr + `}]}`
	}
	for _, tc := range []struct {
		name, dashboard, want string
	}{
		{"a variable no one defines",
			`{"panels": [` + panel("1", "${datasource}", `"topk($topn, up{node=~\"$node\"})"`) + `], ` + variables + `}`,
			"undefined variable $topn"},
		{"a panel on another data source",
			`{"panels": [` + panel("1", "prometheus-main", `"up"`) + `], ` + variables + `}`,
			"data source is not ${datasource}"},
		{"an empty query",
			`{"panels": [` + panel("1", "${datasource}", `" "`) + `], ` + variables + `}`,
			"empty"},
		{"two panels of one id",
			`{"panels": [` + panel("1", "${datasource}", `"up"`) + `, {"id": 2, "type": "row", "panels": [` +
				panel("1", "${datasource}", `"up"`) + `]}], ` + variables + `}`,
			"two panels of id 1"},
		{"no Prometheus data source variable",
			`{"panels": [` + panel("1", "${datasource}", `"up"`) + `]}`,
			"no Prometheus data source variable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dashboardGroups([]byte(tc.dashboard))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	groups, err := dashboardGroups([]byte(`{"panels": [{"id": 9, "type": "row", "panels": [` +
		panel("1", "${datasource}", `"topk(${top}, rate(x{node=~\"$node\"}[$__rate_interval]))"`) + `]}], ` +
		variables + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := groups[0]["rules"].([]map[string]any)[0]["expr"]; got != `topk(10, rate(x{node=~".*"}[5m]))` {
		t.Errorf("a collapsed row's query became %q", got)
	}
}
