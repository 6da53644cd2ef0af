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

// Every update, and every create whose validity the API server cannot see for itself, goes to
// the validating webhook. Its match condition decides the rest: a create of a TServer that uses
// only fields whose rules are all in the condition (a name that is lower(app)-lower(server),
// distinct servants or ports, a release, env with valid names, tLocalVolume and emptyDir mounts
// at distinct clean absolute paths; everything else the CRD's schema checks) is valid, and is
// spared the round trip. A TServer that uses anything more, or breaks one of those rules, is
// sent, and ValidateTServer reports every violation with its field path: a hostPath mount, which
// might reach the host root (ValidationOptions.HostRoot), always is. The webhook suite checks
// that no invalid TServer of ValidateTServer's tests is spared.
// +kubebuilder:webhook:path=/validate-k8s-tars-io-v1beta1-tserver,mutating=false,failurePolicy=fail,sideEffects=None,groups=k8s.tars.io,resources=tservers,verbs=create;update,versions=v1beta1,name=vtserver-v1beta1.kb.io,admissionReviewVersions=v1,timeoutSeconds=10,patch=`{"matchConditions":[{"name":"validation-needs-the-webhook","expression":"request.operation != 'CREATE' || !(has(object.spec) && has(object.metadata.name) && has(object.spec.app) && has(object.spec.server) && has(object.spec.subType) && object.metadata.name == object.spec.app.lowerAscii() + '-' + object.spec.server.lowerAscii() && size(object.metadata.name) <= 52 && (object.spec.subType != 'tars' || (has(object.spec.tars) && !has(object.spec.normal) && (!has(object.spec.tars.servants) || object.spec.tars.servants.all(a, has(a.name) && has(a.port) && a.port >= 1 && a.port <= 65535 && object.spec.tars.servants.filter(b, has(b.name) && b.name.lowerAscii() == a.name.lowerAscii()).size() == 1 && object.spec.tars.servants.filter(b, has(b.port) && b.port == a.port).size() == 1)))) && (object.spec.subType != 'normal' || (has(object.spec.normal) && !has(object.spec.tars) && (!has(object.spec.normal.ports) || object.spec.normal.ports.all(a, has(a.name) && has(a.port) && a.port >= 1 && a.port <= 65535 && object.spec.normal.ports.filter(b, has(b.name) && b.name.lowerAscii() == a.name.lowerAscii()).size() == 1 && object.spec.normal.ports.filter(b, has(b.port) && b.port == a.port).size() == 1)))) && (!has(object.spec.release) || (has(object.spec.release.id) && object.spec.release.id != '' && has(object.spec.release.image) && object.spec.release.image.trim() != '' && (!has(object.spec.release.secret) || object.spec.release.secret == ''))) && has(object.spec.k8s) && (!has(object.spec.k8s.replicas) || object.spec.k8s.replicas >= 0) && (!has(object.spec.k8s.serviceAccount) || object.spec.k8s.serviceAccount == '') && (!has(object.spec.k8s.env) || object.spec.k8s.env.all(e, has(e.name) && e.name.matches('^[ -<>-~]+$') && !(has(e.value) && e.value != '' && has(e.valueFrom)))) && (!has(object.spec.k8s.envFrom) || size(object.spec.k8s.envFrom) == 0) && (!has(object.spec.k8s.hostPorts) || size(object.spec.k8s.hostPorts) == 0) && (!has(object.spec.k8s.nodeSelector) || size(object.spec.k8s.nodeSelector) == 0) && (!has(object.spec.k8s.readinessGates) || size(object.spec.k8s.readinessGates) == 0) && (!has(object.spec.k8s.resources) || ((!has(object.spec.k8s.resources.requests) || size(object.spec.k8s.resources.requests) == 0) && (!has(object.spec.k8s.resources.limits) || size(object.spec.k8s.resources.limits) == 0))) && (!has(object.spec.k8s.updateStrategy) || (!has(object.spec.k8s.updateStrategy.rollingUpdate) && (!has(object.spec.k8s.updateStrategy.type) || object.spec.k8s.updateStrategy.type == 'RollingUpdate'))) && (!has(object.spec.k8s.mounts) || object.spec.k8s.mounts.all(m, has(m.mountPath) && m.mountPath.matches('^(/[^/]+)+$') && !m.mountPath.split('/').exists(p, p == '.' || p == '..') && object.spec.k8s.mounts.filter(n, has(n.mountPath) && n.mountPath == m.mountPath).size() == 1 && (!has(m.subPath) || m.subPath == '') && (!has(m.subPathExpr) || m.subPathExpr == '') && has(m.source) && (has(m.source.tLocalVolume) || has(m.source.emptyDir)))))"}]}`

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
func (v *TServerValidator) ValidateUpdate(_ context.Context, oldTS, newTS *tarsv1beta1.TServer) (admission.Warnings, error) {
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
