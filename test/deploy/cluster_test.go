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

package deploy

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/version"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/testenv"
)

// nodeNameExtra is the user extra in which the API server names the node of the pod a service
// account token is bound to.
const nodeNameExtra = "authentication.kubernetes.io/node-name"

// agentCluster is an API server (RBAC on, every request in an audit log) with the rendered
// objects that govern the agent installed for real: ClusterRoles and their bindings, the
// admission policies and the StorageClass. The agent tests share it.
type agentCluster struct {
	cfg   *rest.Config
	admin client.Client
	// auditLog is the API server's audit log: one JSON event per line.
	auditLog string
	// namespace and serviceAccount are those the rendered agent DaemonSet runs as.
	namespace, serviceAccount string
	// hostRoot is the DaemonSet's --host-root.
	hostRoot string
}

var (
	sharedCluster     *agentCluster
	sharedClusterErr  error
	sharedClusterOnce sync.Once
	// stopSharedCluster stops the shared cluster's API server after the last test.
	stopSharedCluster = func() {}
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopSharedCluster()
	os.Exit(code)
}

// cluster starts the shared agentCluster on first use.
func cluster(t *testing.T) *agentCluster {
	t.Helper()
	objs := rendered(t)
	sharedClusterOnce.Do(func() { sharedCluster, sharedClusterErr = startAgentCluster(objs) })
	if sharedClusterErr != nil {
		t.Fatal(sharedClusterErr)
	}
	return sharedCluster
}

// auditPolicy logs who made every request, at what, and its response code.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
`

func startAgentCluster(objs []*unstructured.Unstructured) (*agentCluster, error) {
	c := &agentCluster{}
	i := slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetKind() == "DaemonSet" })
	if i < 0 {
		return nil, fmt.Errorf("no agent DaemonSet rendered")
	}
	ds := &appsv1.DaemonSet{}
	if err := fromUnstructured(objs[i], ds); err != nil {
		return nil, err
	}
	c.namespace, c.serviceAccount = ds.Namespace, ds.Spec.Template.Spec.ServiceAccountName
	for _, arg := range ds.Spec.Template.Spec.Containers[0].Args {
		if v, ok := strings.CutPrefix(arg, "--host-root="); ok {
			c.hostRoot = v
		}
	}

	dir, err := os.MkdirTemp("", "tserver-deploy-")
	if err != nil {
		return nil, err
	}
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	c.auditLog = filepath.Join(dir, "audit.log")
	env := testenv.New(false)
	env.ControlPlane.GetAPIServer().Configure().
		Set("audit-policy-file", policy).
		Set("audit-log-path", c.auditLog)
	if c.cfg, err = env.Start(); err != nil {
		return nil, fmt.Errorf("starting kube-apiserver: %w", err)
	}
	stopSharedCluster = func() {
		_ = env.Stop()
		_ = os.RemoveAll(dir)
	}
	if c.admin, err = client.New(c.cfg, client.Options{}); err != nil {
		return nil, err
	}
	install := []string{
		"ClusterRole", "ClusterRoleBinding", "StorageClass",
		"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
		"MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
	}
	for _, obj := range objs {
		if slices.Contains(install, obj.GetKind()) {
			if err := c.admin.Create(context.Background(), obj.DeepCopy()); err != nil {
				return nil, fmt.Errorf("installing %s %s: %w", obj.GetKind(), obj.GetName(), err)
			}
		}
	}
	if err := c.waitForPolicies(); err != nil {
		return nil, err
	}
	return c, nil
}

// waitForPolicies waits until the API server applies the admission policies just installed,
// which it loads a moment after they are created: the node restriction policy denies the agent
// a volume of another node, and the claim-labelling policy labels a claim with its node.
func (c *agentCluster) waitForPolicies() error {
	ctx := context.Background()
	agent, err := client.New(c.agentConfig("node-1"), client.Options{})
	if err != nil {
		return err
	}
	foreign := testVolume("probe", "node-2", "host-2", c.hostRoot+"/default/app.server/probe")
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			return apierrors.IsForbidden(agent.Create(ctx, foreign.DeepCopy(), client.DryRunAll)), nil
		}); err != nil {
		return fmt.Errorf("the node restriction policy never denied a volume of another node: %w", err)
	}
	if !servesMutatingPolicy() {
		return nil // the manager labels the claims there
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true,
		func(ctx context.Context) (bool, error) {
			claim := testClaim("probe", "node-1")
			err := c.admin.Create(ctx, claim, client.DryRunAll)
			return err == nil && claim.Labels[tarsv1beta1.LabelSelectedNode] == "node-1", nil
		}); err != nil {
		return fmt.Errorf("the claim-labelling policy never labelled a claim: %w", err)
	}
	return nil
}

// agentUser is the user name of the agent's service account.
func (c *agentCluster) agentUser() string {
	return "system:serviceaccount:" + c.namespace + ":" + c.serviceAccount
}

// agentConfig is a rest.Config that acts as the agent's service account, with a token bound to
// a pod on node; node "" stands for a token bound to no pod (a legacy Secret's, say).
func (c *agentCluster) agentConfig(node string) *rest.Config {
	cfg := rest.CopyConfig(c.cfg)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: c.agentUser(),
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + c.namespace, "system:authenticated"},
	}
	if node != "" {
		cfg.Impersonate.Extra = map[string][]string{nodeNameExtra: {node}}
	}
	return cfg
}

// auditEvent is what the tests read of an audit.k8s.io/v1 Event.
type auditEvent struct {
	Stage            string `json:"stage"`
	Verb             string `json:"verb"`
	ImpersonatedUser *struct {
		Username string              `json:"username"`
		Extra    map[string][]string `json:"extra"`
	} `json:"impersonatedUser"`
	ObjectRef *struct {
		APIGroup    string `json:"apiGroup"`
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"responseStatus"`
}

// permission is a verb on a resource ("persistentvolumes/status") of an API group, as RBAC grants it.
type permission struct{ group, resource, verb string }

func (p permission) String() string {
	group := p.group
	if group == "" {
		group = "core"
	}
	return fmt.Sprintf("%s %s/%s", p.verb, group, p.resource)
}

// requestsOf reads the audit log for the requests the agent's service account made with a token
// bound to a pod on node, each once.
func (c *agentCluster) requestsOf(t *testing.T, node string) []auditEvent {
	t.Helper()
	f, err := os.Open(c.auditLog)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	var events []auditEvent
	lines := bufio.NewScanner(f)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	for lines.Scan() {
		var e auditEvent
		if err := json.Unmarshal(lines.Bytes(), &e); err != nil {
			t.Fatalf("audit log %s: %v", c.auditLog, err)
		}
		u := e.ImpersonatedUser
		// Long-running requests (watches) are logged when they start; the rest when complete.
		if u == nil || u.Username != c.agentUser() || !slices.Equal(u.Extra[nodeNameExtra], []string{node}) ||
			e.ObjectRef == nil || e.Stage != "ResponseComplete" && e.Verb != "watch" {
			continue
		}
		events = append(events, e)
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

func fromUnstructured(obj *unstructured.Unstructured, into any) error {
	return runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, into)
}

// servesMutatingPolicy says whether the Kubernetes release under test (KUBE_VERSION, as `make
// test-deploy` passes it; the newest when unset) serves MutatingAdmissionPolicy, which the
// renderings then carry: 1.36 and later.
func servesMutatingPolicy() bool {
	v := os.Getenv("KUBE_VERSION")
	if v == "" {
		return true
	}
	parsed, err := version.ParseGeneric(v)
	return err != nil || parsed.AtLeast(version.MajorMinor(1, 36))
}
