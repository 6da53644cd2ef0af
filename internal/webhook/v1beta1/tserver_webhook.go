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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// SetupTServerWebhookWithManager registers the TServer defaulting and validating webhooks; the
// validating one checks the rules of ValidateTServer with opts.
func SetupTServerWebhookWithManager(mgr ctrl.Manager, opts ValidationOptions) error {
	return setupTServerWebhook(mgr, &TServerValidator{Options: opts})
}

// setupTServerWebhook registers the webhooks with validator as the validating one.
func setupTServerWebhook(mgr ctrl.Manager, validator admission.Validator[*tarsv1beta1.TServer]) error {
	return ctrl.NewWebhookManagedBy(mgr, &tarsv1beta1.TServer{}).
		WithValidator(validator).
		WithDefaulter(&TServerDefaulter{}).
		Complete()
}

// The mutating webhook's match condition (match_conditions.go) calls it only for a tLocalVolume
// with an empty (or, without the CRD's defaults, missing) uid, gid or mode.

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

// Every update, and every create whose validity the API server cannot see for itself
// (sparedCreate, match_conditions.go), goes to the validating webhook; ValidateTServer reports
// every violation with its field path.

// TServerValidator rejects TServers that break the rules of ValidateTServer and
// ValidateTServerUpdate, reporting every violation with its field path.
type TServerValidator struct {
	// Options are the cluster's settings the rules depend on; the zero value means the defaults.
	Options ValidationOptions
}

// ValidateCreate implements admission.Validator.
func (v *TServerValidator) ValidateCreate(_ context.Context, ts *tarsv1beta1.TServer) (admission.Warnings, error) {
	return nil, invalid(ts, v.Options.ValidateTServer(ts))
}

// ValidateUpdate implements admission.Validator.
func (v *TServerValidator) ValidateUpdate(_ context.Context,
	oldTS, newTS *tarsv1beta1.TServer) (admission.Warnings, error) {
	return nil, invalid(newTS, v.Options.ValidateTServerUpdate(oldTS, newTS))
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
