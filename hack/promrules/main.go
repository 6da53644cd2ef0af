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

// Command promrules turns what `make test-alerts` checks into Prometheus rule files, which
// promtool reads: the rule groups of a PrometheusRule (rules.yaml), and the queries of a
// Grafana dashboard as recording rules (dashboard.yaml), its variables replaced by values of
// theirs, so that `promtool check rules` parses every query a panel makes.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

func main() {
	rules := flag.String("rules", "", "a PrometheusRule manifest: its spec.groups are written to <out>/rules.yaml")
	dashboard := flag.String("dashboard", "", "a Grafana dashboard (JSON): its panels' queries are written to "+
		"<out>/dashboard.yaml as recording rules")
	out := flag.String("out", ".", "the directory to write to")
	flag.Parse()
	if err := run(*rules, *dashboard, *out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(rules, dashboard, out string) error {
	if rules != "" {
		if err := convert(rules, filepath.Join(out, "rules.yaml"), prometheusRuleGroups); err != nil {
			return err
		}
	}
	if dashboard != "" {
		if err := convert(dashboard, filepath.Join(out, "dashboard.yaml"), dashboardGroups); err != nil {
			return err
		}
	}
	return nil
}

// ruleFile is a Prometheus rule file.
type ruleFile struct {
	Groups []map[string]any `json:"groups"`
}

func convert(in, out string, groups func([]byte) ([]map[string]any, error)) error {
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	g, err := groups(data)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	text, err := yaml.Marshal(ruleFile{Groups: g})
	if err != nil {
		return err
	}
	return os.WriteFile(out, text, 0o644)
}

// prometheusRuleGroups are the rule groups of a PrometheusRule, as they are.
func prometheusRuleGroups(data []byte) ([]map[string]any, error) {
	var rule struct {
		Kind string `json:"kind"`
		Spec ruleFile
	}
	if err := yaml.Unmarshal(data, &rule); err != nil {
		return nil, err
	}
	if rule.Kind != "PrometheusRule" || len(rule.Spec.Groups) == 0 {
		return nil, errors.New("not a PrometheusRule with rule groups")
	}
	return rule.Spec.Groups, nil
}

// Dashboard is the part of a Grafana dashboard that holds queries.
type Dashboard struct {
	Panels     []Panel `json:"panels"`
	Templating struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a dashboard panel; a row holds the panels it collapses.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	Targets    []Target    `json:"targets"`
	Panels     []Panel     `json:"panels"`
}

// Target is a panel's query.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
}

// Datasource names a panel's or a query's data source.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a dashboard variable.
type Variable struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Query    any    `json:"query"`
	AllValue string `json:"allValue"`
	Current  struct {
		Value any `json:"value"`
	} `json:"current"`
}

// builtins are Grafana's own variables, with a value each for the check.
var builtins = map[string]string{"__rate_interval": "5m", "__interval": "1m", "__range": "6h"}

// variableRef is a variable in a query: $name or ${name}.
var variableRef = regexp.MustCompile(`\$\{(\w+)\}|\$(\w+)`)

// dashboardGroups are the queries of a dashboard's panels as recording rules, one group. It
// fails on what would leave a panel without data: a panel or query not on the dashboard's
// Prometheus data source variable, an empty query, an undefined variable, two panels of one id.
func dashboardGroups(data []byte) ([]map[string]any, error) {
	var d Dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, err
	}
	values := map[string]string{}
	var source string
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			if v.Query == "prometheus" {
				source = "${" + v.Name + "}"
			}
		case "custom", "constant", "textbox":
			values[v.Name] = fmt.Sprint(v.Current.Value)
		default: // a query: any of its values
			values[v.Name] = cmp.Or(v.AllValue, ".*")
		}
	}
	maps.Copy(values, builtins)
	if source == "" {
		return nil, errors.New("no Prometheus data source variable")
	}
	var rules []map[string]any
	ids := map[int]bool{}
	var walk func([]Panel) error
	walk = func(panels []Panel) error {
		for _, p := range panels {
			if ids[p.ID] {
				return fmt.Errorf("two panels of id %d", p.ID)
			}
			ids[p.ID] = true
			if err := walk(p.Panels); err != nil {
				return err
			}
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				return fmt.Errorf("panel %d %q: no query", p.ID, p.Title)
			}
			if p.Datasource == nil || p.Datasource.UID != source {
				return fmt.Errorf("panel %d %q: data source is not %s", p.ID, p.Title, source)
			}
			for _, t := range p.Targets {
				expr, err := substitute(t.Expr, values)
				switch {
				case err != nil:
					return fmt.Errorf("panel %d %q, query %s: %w", p.ID, p.Title, t.RefID, err)
				case strings.TrimSpace(t.Expr) == "":
					return fmt.Errorf("panel %d %q, query %s: empty", p.ID, p.Title, t.RefID)
				case t.Datasource != nil && t.Datasource.UID != source:
					return fmt.Errorf("panel %d %q, query %s: data source is not %s", p.ID, p.Title, t.RefID, source)
				}
				rules = append(rules, map[string]any{
					"record": fmt.Sprintf("dashboard:panel_%d:%s", p.ID, t.RefID),
					"expr":   expr,
					"labels": map[string]string{"panel": p.Title},
				})
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	if len(rules) == 0 {
		return nil, errors.New("no queries")
	}
	return []map[string]any{{"name": "dashboard", "rules": rules}}, nil
}

// substitute replaces the variables of a query by their values.
func substitute(expr string, values map[string]string) (string, error) {
	var undefined []string
	out := variableRef.ReplaceAllStringFunc(expr, func(ref string) string {
		m := variableRef.FindStringSubmatch(ref)
		name := m[1] + m[2]
		value, ok := values[name]
		if !ok {
			undefined = append(undefined, "$"+name)
		}
		return value
	})
	if len(undefined) > 0 {
		return "", fmt.Errorf("undefined variable %s", strings.Join(undefined, ", "))
	}
	return out, nil
}
