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

package v1beta1

import (
	"context"

	ctrl "sigs.k8s.io/controller-runtime"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	k8sv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// nolint:unused
// log is for logging in this package.
var tserverlog = logf.Log.WithName("tserver-resource")

// SetupTServerWebhookWithManager registers the webhook for TServer in the manager.
func SetupTServerWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &k8sv1beta1.TServer{}).
		WithValidator(&TServerValidator{}).
		WithDefaulter(&TServerDefaulter{}).
		Complete()
}

// TODO(user): EDIT THIS FILE!  THIS IS SCAFFOLDING FOR YOU TO OWN!

// +kubebuilder:webhook:path=/mutate-k8s-tars-io-v1beta1-tserver,mutating=true,failurePolicy=fail,sideEffects=None,groups=k8s.tars.io,resources=tservers,verbs=create;update,versions=v1beta1,name=mtserver-v1beta1.kb.io,admissionReviewVersions=v1

// TServerDefaulter struct is responsible for setting default values on the custom resource of the
// Kind TServer when those are created or updated.
//
// NOTE: The +kubebuilder:object:generate=false marker prevents controller-gen from generating DeepCopy methods,
// as it is used only for temporary operations and does not need to be deeply copied.
type TServerDefaulter struct {
	// TODO(user): Add more fields as needed for defaulting
}

// Default implements admission.Defaulter so a webhook will be registered for the Kind TServer.
func (d *TServerDefaulter) Default(_ context.Context, obj *k8sv1beta1.TServer) error {
	tserverlog.Info("Defaulting for TServer", "name", obj.GetName())

	// TODO(user): fill in your defaulting logic.

	return nil
}

// TODO(user): change verbs to "verbs=create;update;delete" if you want to enable deletion validation.
// NOTE: If you want to customise the 'path', use the flags '--defaulting-path' or '--validation-path'.
// +kubebuilder:webhook:path=/validate-k8s-tars-io-v1beta1-tserver,mutating=false,failurePolicy=fail,sideEffects=None,groups=k8s.tars.io,resources=tservers,verbs=create;update,versions=v1beta1,name=vtserver-v1beta1.kb.io,admissionReviewVersions=v1

// TServerValidator struct is responsible for validating the TServer resource
// when it is created, updated, or deleted.
//
// NOTE: The +kubebuilder:object:generate=false marker prevents controller-gen from generating DeepCopy methods,
// as this struct is used only for temporary operations and does not need to be deeply copied.
type TServerValidator struct {
	// TODO(user): Add more fields as needed for validation
}

// ValidateCreate implements admission.Validator so a webhook will be registered for the type TServer.
func (v *TServerValidator) ValidateCreate(_ context.Context, obj *k8sv1beta1.TServer) (admission.Warnings, error) {
	tserverlog.Info("Validation for TServer upon creation", "name", obj.GetName())

	// TODO(user): fill in your validation logic upon object creation.

	return nil, nil
}

// ValidateUpdate implements admission.Validator so a webhook will be registered for the type TServer.
func (v *TServerValidator) ValidateUpdate(_ context.Context, oldObj, newObj *k8sv1beta1.TServer) (admission.Warnings, error) {
	tserverlog.Info("Validation for TServer upon update", "name", newObj.GetName())

	// TODO(user): fill in your validation logic upon object update.

	return nil, nil
}

// ValidateDelete implements admission.Validator so a webhook will be registered for the type TServer.
func (v *TServerValidator) ValidateDelete(_ context.Context, obj *k8sv1beta1.TServer) (admission.Warnings, error) {
	tserverlog.Info("Validation for TServer upon deletion", "name", obj.GetName())

	// TODO(user): fill in your validation logic upon object deletion.

	return nil, nil
}
