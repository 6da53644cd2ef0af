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

	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// storageClassProblem says why no node agent will provision the claims of node-local volumes,
// or "": t-storage-class is missing, or is not the operator's (TarsK8S's class, with
// kubernetes.io/no-provisioner, provisions nothing by itself).
func (r *TServerReconciler) storageClassProblem(ctx context.Context) (string, error) {
	sc := &storagev1.StorageClass{}
	err := r.Get(ctx, client.ObjectKey{Name: tarsv1beta1.StorageClassName}, sc)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("StorageClass %s does not exist; apply config/storageclass", tarsv1beta1.StorageClassName), nil
	case err != nil:
		return "", err
	case sc.Provisioner != tarsv1beta1.Provisioner:
		return fmt.Sprintf("StorageClass %s has provisioner %s, not %s, so no volume is provisioned; delete it and "+
			"apply config/storageclass (claims and volumes that exist are not affected)",
			sc.Name, sc.Provisioner, tarsv1beta1.Provisioner), nil
	}
	return "", nil
}
