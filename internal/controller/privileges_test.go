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
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	. "github.com/onsi/gomega"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/yaml"
)

// managerUser is who the suite's manager runs as: a user bound to the manager's role as
// `make manifests` generates it (config/rbac/role.yaml), and nothing else.
const managerUser = "tserver-operator-manager"

// unusedOnPurpose are the grants of the manager's role that the suite cannot see used, and why
// they are granted all the same.
var unusedOnPurpose = map[string]string{
	"k8s.tars.io/tservers/finalizers update": "the OwnerReferencesPermissionEnforcement admission plugin, which envtest " +
		"does not enable, asks for it when the controller sets blockOwnerDeletion on the objects it owns",
	"events.k8s.io/events patch": "the event recorder patches an Event that repeats (a series)",
}

// bindManagerRole creates the manager's ClusterRole, read from config/rbac/role.yaml, bound to
// managerUser.
func bindManagerRole(ctx context.Context, c client.Client) *rbacv1.ClusterRole {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	Expect(err).NotTo(HaveOccurred())
	role := &rbacv1.ClusterRole{}
	Expect(yaml.UnmarshalStrict(data, role)).To(Succeed())
	Expect(c.Create(ctx, role.DeepCopy())).To(Succeed())
	Expect(c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: managerUser}},
	})).To(Succeed())
	return role
}

// apiUse records which verbs the manager used on which resources, from its HTTP requests.
type apiUse struct {
	mu   sync.Mutex
	used sets.Set[string] // "<group>/<resource>[/<subresource>] <verb>"
	// lists counts the lists that are no informer's (not streamed through a watch), by
	// "<namespace> <resource>".
	lists map[string]int
}

// listsIn is how many lists of resource in namespace ns the manager made, informers' aside.
func (u *apiUse) listsIn(ns, resource string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.lists[ns+" "+resource]
}

// wrap makes cfg record its requests in u.
func (u *apiUse) wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return promhttp.RoundTripperFunc(func(req *http.Request) (*http.Response, error) {
			if uses := requestUses(req); len(uses) > 0 {
				u.mu.Lock()
				if u.used == nil {
					u.used, u.lists = sets.New[string](), map[string]int{}
				}
				u.used.Insert(uses...)
				if parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/"); len(uses) == 1 &&
					strings.HasSuffix(uses[0], " list") && len(parts) >= 3 && parts[len(parts)-3] == "namespaces" {
					u.lists[parts[len(parts)-2]+" "+parts[len(parts)-1]]++
				}
				u.mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
	return cfg
}

// requestUses are the RBAC resource and verbs an API request stands for, as
// "<group>/<resource> <verb>"; none for discovery and other requests RBAC does not grant by
// resource. An informer's list streamed through its watch (sendInitialEvents) stands for list
// and watch: the API server authorizes it as a watch, but an informer lists where the API server
// cannot stream.
func requestUses(req *http.Request) []string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	var group string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		group, parts = parts[1], parts[3:]
	default:
		return nil
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if len(parts) == 0 {
		return nil
	}
	resource, named := parts[0], len(parts) > 1
	if len(parts) > 2 {
		resource += "/" + parts[2]
	}
	var verb string
	query := req.URL.Query()
	switch req.Method {
	case http.MethodGet:
		switch {
		case query.Get("watch") == "true" || query.Get("watch") == "1":
			verb = "watch"
			if query.Get("sendInitialEvents") == "true" {
				return []string{group + "/" + resource + " list", group + "/" + resource + " watch"}
			}
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	case http.MethodPost:
		verb = "create"
	case http.MethodPut:
		verb = "update"
	case http.MethodPatch:
		verb = "patch"
	case http.MethodDelete:
		verb = "delete"
		if !named {
			verb = "deletecollection"
		}
	default:
		return nil
	}
	return []string{group + "/" + resource + " " + verb}
}

// unused lists the grants of role that u did not use, except those unusedOnPurpose.
func (u *apiUse) unused(role *rbacv1.ClusterRole) []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var unused []string
	for _, rule := range role.Rules {
		for _, group := range rule.APIGroups {
			for _, resource := range rule.Resources {
				for _, verb := range rule.Verbs {
					grant := group + "/" + resource + " " + verb
					if _, ok := unusedOnPurpose[grant]; !ok && !u.used.Has(grant) {
						unused = append(unused, grant)
					}
				}
			}
		}
	}
	return unused
}

// writeLog records the writes the manager's client makes (creates, updates, patches, deletes,
// of objects and their subresources), by namespace: each test has its own.
type writeLog struct {
	mu     sync.Mutex
	writes map[string][]string
}

// in is the writes made so far in namespace ns, as "<verb> <type> <name>".
func (w *writeLog) in(ns string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.writes[ns])
}

func (w *writeLog) add(verb string, obj client.Object) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writes == nil {
		w.writes = map[string][]string{}
	}
	typ := strings.TrimPrefix(fmt.Sprintf("%T", obj), "*")
	w.writes[obj.GetNamespace()] = append(w.writes[obj.GetNamespace()], verb+" "+typ+" "+obj.GetName())
}

// newClient is a client.NewClientFunc for a manager whose client records its writes in w.
func (w *writeLog) newClient(config *rest.Config, options client.Options) (client.Client, error) {
	c, err := client.NewWithWatch(config, options)
	if err != nil {
		return nil, err
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			w.add("create", obj)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			w.add("update", obj)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch,
			opts ...client.PatchOption) error {
			w.add("patch", obj)
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			w.add("delete", obj)
			return c.Delete(ctx, obj, opts...)
		},
		DeleteAllOf: func(ctx context.Context, c client.WithWatch, obj client.Object,
			opts ...client.DeleteAllOfOption) error {
			w.add("deleteAllOf", obj)
			return c.DeleteAllOf(ctx, obj, opts...)
		},
		SubResourceCreate: func(ctx context.Context, c client.Client, sub string, obj, body client.Object,
			opts ...client.SubResourceCreateOption) error {
			w.add("create/"+sub, obj)
			return c.SubResource(sub).Create(ctx, obj, body, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object,
			opts ...client.SubResourceUpdateOption) error {
			w.add("update/"+sub, obj)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch,
			opts ...client.SubResourcePatchOption) error {
			w.add("patch/"+sub, obj)
			return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
		},
	}), nil
}
