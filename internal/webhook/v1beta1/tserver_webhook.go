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

// Package v1beta1 holds the admission webhooks of TServer: defaulting of node-local volume
// ownership and mode, and the validation rules every TServer must satisfy.
package v1beta1

import (
	"context"
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// appServerIndex indexes TServers by "<app>.<server>", to find the same server in other namespaces.
const appServerIndex = "spec.appServer"

func appServer(ts *tarsv1beta1.TServer) string { return ts.Spec.App + "." + ts.Spec.Server }

// SetupTServerWebhookWithManager registers the TServer defaulting and validating webhooks.
func SetupTServerWebhookWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &tarsv1beta1.TServer{}, appServerIndex,
		func(obj client.Object) []string { return []string{appServer(obj.(*tarsv1beta1.TServer))} }); err != nil {
		return err
	}
	return ctrl.NewWebhookManagedBy(mgr, &tarsv1beta1.TServer{}).
		WithValidator(&TServerValidator{Reader: mgr.GetClient()}).
		WithDefaulter(&TServerDefaulter{}).
		Complete()
}

// The API server applies the CRD schema's defaults before it calls a mutating webhook, so only a
// tLocalVolume with an empty (or, without those defaults, missing) uid, gid or mode needs this
// one: its match condition spares every other create and update a round trip. Each step checks
// the type it goes into, so that a malformed object reaches schema validation and its message.
// +kubebuilder:webhook:path=/mutate-k8s-tars-io-v1beta1-tserver,mutating=true,failurePolicy=fail,sideEffects=None,groups=k8s.tars.io,resources=tservers,verbs=create;update,versions=v1beta1,name=mtserver-v1beta1.kb.io,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"matchConditions":[{"name":"local-volume-needs-defaults","expression":"has(object.spec) && type(object.spec) == map && has(object.spec.k8s) && type(object.spec.k8s) == map && has(object.spec.k8s.mounts) && type(object.spec.k8s.mounts) == list && object.spec.k8s.mounts.exists(m, type(m) == map && has(m.source) && type(m.source) == map && has(m.source.tLocalVolume) && type(m.source.tLocalVolume) == map && ['uid', 'gid', 'mode'].exists(f, !(f in m.source.tLocalVolume) || m.source.tLocalVolume[f] == ''))"}]}`

// TServerDefaulter fills in what a TServer may leave out.
type TServerDefaulter struct{}

// Default implements admission.Defaulter.
func (d *TServerDefaulter) Default(_ context.Context, ts *tarsv1beta1.TServer) error {
	DefaultTServer(ts)
	return nil
}

// DefaultTServer gives every tLocalVolume whose uid, gid or mode is missing or empty the
// defaults "0", "0" and "755".
func DefaultTServer(ts *tarsv1beta1.TServer) {
	for i := range ts.Spec.K8S.Mounts {
		if lv := ts.Spec.K8S.Mounts[i].Source.TLocalVolume; lv != nil {
			*lv = lv.WithDefaults()
		}
	}
}

// +kubebuilder:webhook:path=/validate-k8s-tars-io-v1beta1-tserver,mutating=false,failurePolicy=fail,sideEffects=None,groups=k8s.tars.io,resources=tservers,verbs=create;update,versions=v1beta1,name=vtserver-v1beta1.kb.io,admissionReviewVersions=v1,timeoutSeconds=10

// TServerValidator rejects TServers that break the rules of ValidateTServer and
// ValidateTServerUpdate, reporting every violation with its field path.
type TServerValidator struct {
	// Reader finds TServers of the same app and server in other namespaces, to warn about them;
	// nil skips the check.
	Reader client.Reader
}

// ValidateCreate implements admission.Validator.
func (v *TServerValidator) ValidateCreate(ctx context.Context, ts *tarsv1beta1.TServer) (admission.Warnings, error) {
	if err := invalid(ts, ValidateTServer(ts)); err != nil {
		return nil, err
	}
	return v.sameServerElsewhere(ctx, ts), nil
}

// sameServerElsewhere warns when the server also runs in another namespace: node-local claims
// select volumes by app, server and volume name (as TarsK8S's do), so the two could bind each
// other's volumes.
func (v *TServerValidator) sameServerElsewhere(ctx context.Context, ts *tarsv1beta1.TServer) admission.Warnings {
	if v.Reader == nil || !slices.ContainsFunc(ts.Spec.K8S.Mounts, func(m tarsv1beta1.TK8SMount) bool {
		return m.Source.TLocalVolume != nil
	}) {
		return nil
	}
	list := &tarsv1beta1.TServerList{}
	if err := v.Reader.List(ctx, list, client.MatchingFields{appServerIndex: appServer(ts)}); err != nil {
		return nil // a warning is not worth failing admission for
	}
	var warnings admission.Warnings
	for _, other := range list.Items {
		if other.Namespace != ts.Namespace {
			warnings = append(warnings, fmt.Sprintf("server %s also runs in namespace %s: node-local volumes are "+
				"matched by app, server and volume name, so the two can bind each other's volumes; "+
				"give them different app or server names", appServer(ts), other.Namespace))
		}
	}
	return warnings
}

// ValidateUpdate implements admission.Validator.
func (v *TServerValidator) ValidateUpdate(_ context.Context, oldTS, newTS *tarsv1beta1.TServer) (admission.Warnings, error) {
	return nil, invalid(newTS, ValidateTServerUpdate(oldTS, newTS))
}

// ValidateDelete implements admission.Validator; deletion is always allowed.
func (v *TServerValidator) ValidateDelete(context.Context, *tarsv1beta1.TServer) (admission.Warnings, error) {
	return nil, nil
}

// invalid turns errs into the API's Invalid status, so kubectl prints each field path.
func invalid(ts *tarsv1beta1.TServer, errs field.ErrorList) error {
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(tarsv1beta1.GroupVersion.WithKind("TServer").GroupKind(), ts.Name, errs)
}
