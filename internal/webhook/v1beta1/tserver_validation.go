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
	"fmt"
	"path"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

// maxNameLength bounds metadata.name: the StatefulSet controller labels every pod with
// "<statefulset>-<revision hash>" (controller-revision-hash), and a label value may hold 63
// characters, so a longer StatefulSet name would never get a pod.
const maxNameLength = 52

var (
	identifierRE    = regexp.MustCompile(tarsv1beta1.IdentifierPattern)
	localVolumeIDRE = regexp.MustCompile(tarsv1beta1.LocalVolumeIDPattern)
	localVolumeMode = regexp.MustCompile(tarsv1beta1.LocalVolumeModePattern)
)

// ValidationOptions are the settings of the cluster that some rules depend on. The zero value
// stands for the defaults.
type ValidationOptions struct {
	// HostRoot is the host directory node-local volumes live under, as the node agents are
	// configured (their --host-root); empty means tarsv1beta1.DefaultHostRoot.
	HostRoot string
}

// hostRoot is the cleaned host root of o.
func (o ValidationOptions) hostRoot() string {
	if o.HostRoot == "" {
		return tarsv1beta1.DefaultHostRoot
	}
	return path.Clean(o.HostRoot)
}

// ValidateTServer checks a TServer against every rule a create must satisfy, with the default
// ValidationOptions, and returns all violations, each with the path of the field at fault.
func ValidateTServer(ts *tarsv1beta1.TServer) field.ErrorList {
	return ValidationOptions{}.ValidateTServer(ts)
}

// ValidateTServerUpdate checks an update as ValidationOptions.ValidateTServerUpdate does, with
// the default options.
func ValidateTServerUpdate(oldTS, newTS *tarsv1beta1.TServer) field.ErrorList {
	return ValidationOptions{}.ValidateTServerUpdate(oldTS, newTS)
}

// ValidateTServer checks a TServer against every rule a create must satisfy and returns all
// violations, each with the path of the field at fault.
func (o ValidationOptions) ValidateTServer(ts *tarsv1beta1.TServer) field.ErrorList {
	spec := field.NewPath("spec")
	errs := validateIdentifier(ts.Spec.App, spec.Child("app"))
	errs = append(errs, validateIdentifier(ts.Spec.Server, spec.Child("server"))...)
	errs = append(errs, validateName(ts)...)
	endpoints, endpointErrs := validateEndpoints(&ts.Spec, spec)
	errs = append(errs, endpointErrs...)
	errs = append(errs, validateRelease(ts.Spec.Release, spec.Child("release"))...)
	errs = append(errs, o.validateK8S(&ts.Spec.K8S, endpoints, spec.Child("k8s"))...)
	return errs
}

// ValidateTServerUpdate checks an update: the new object must pass ValidateTServer, except that
// a value that was already invalid in the old object may stay (so objects stored before a rule
// existed can still be edited and scaled), and app, server and subType may not change.
func (o ValidationOptions) ValidateTServerUpdate(oldTS, newTS *tarsv1beta1.TServer) field.ErrorList {
	errs := withoutErrorsIn(o.ValidateTServer(newTS), o.ValidateTServer(oldTS))
	spec := field.NewPath("spec")
	errs = append(errs, apivalidation.ValidateImmutableField(newTS.Spec.App, oldTS.Spec.App, spec.Child("app"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(newTS.Spec.Server, oldTS.Spec.Server,
		spec.Child("server"))...)
	errs = append(errs, apivalidation.ValidateImmutableField(newTS.Spec.SubType, oldTS.Spec.SubType,
		spec.Child("subType"))...)
	return errs
}

// withoutErrorsIn returns the errors of errs that old does not contain too.
func withoutErrorsIn(errs, old field.ErrorList) field.ErrorList {
	var kept field.ErrorList
	for _, e := range errs {
		if !slices.ContainsFunc(old, func(o *field.Error) bool {
			return o.Type == e.Type && o.Field == e.Field && reflect.DeepEqual(o.BadValue, e.BadValue)
		}) {
			kept = append(kept, e)
		}
	}
	return kept
}

func validateIdentifier(value string, fld *field.Path) field.ErrorList {
	switch {
	case value == "":
		return field.ErrorList{field.Required(fld, "")}
	case len(value) > validation.DNS1123LabelMaxLength:
		return field.ErrorList{field.TooLong(fld, value, validation.DNS1123LabelMaxLength)}
	case !identifierRE.MatchString(value):
		return field.ErrorList{field.Invalid(fld, value,
			fmt.Sprintf("must match %s (a letter, then letters and digits)", tarsv1beta1.IdentifierPattern))}
	}
	return nil
}

// sparedName restates validateName for the validating webhook's match condition
// (match_conditions.go); the schema's patterns restate validateIdentifier. Change them together.
var sparedName = []string{
	"has(object.spec)", "has(object.metadata.name)", "has(object.spec.app)", "has(object.spec.server)",
	"has(object.spec.subType)",
	"object.metadata.name == object.spec.app.lowerAscii() + '-' + object.spec.server.lowerAscii()",
	"size(object.metadata.name) <= 52",
}

// validateName checks metadata.name against app and server; it says nothing while app or server
// is itself invalid, since the expected name is then meaningless.
func validateName(ts *tarsv1beta1.TServer) field.ErrorList {
	if !identifierRE.MatchString(ts.Spec.App) || !identifierRE.MatchString(ts.Spec.Server) {
		return nil
	}
	fld := field.NewPath("metadata", "name")
	want := tarsv1beta1.ResourceName(ts.Spec.App, ts.Spec.Server)
	if ts.Name != want {
		return field.ErrorList{field.Invalid(fld, ts.Name,
			fmt.Sprintf("must be lower(spec.app)-lower(spec.server), here %q", want))}
	}
	if len(want) > maxNameLength {
		return field.ErrorList{field.Invalid(fld, ts.Name, fmt.Sprintf("must be no more than %d characters: "+
			"the StatefulSet of that name labels its pods with name and revision, and a label value holds 63", maxNameLength))}
	}
	return nil
}

// sparedEndpoints restates validateEndpoints (tars, then normal) for the match condition.
var sparedEndpoints = []string{
	"(object.spec.subType != 'tars' || (has(object.spec.tars) && !has(object.spec.normal) && " +
		"(!has(object.spec.tars.servants) || object.spec.tars.servants.all(a, " +
		distinctEndpoint("object.spec.tars.servants") + "))))",
	"(object.spec.subType != 'normal' || (has(object.spec.normal) && !has(object.spec.tars) && " +
		"(!has(object.spec.normal.ports) || object.spec.normal.ports.all(a, " +
		distinctEndpoint("object.spec.normal.ports") + "))))",
}

// validateEndpoints checks the servants or ports the subType calls for, and returns them for
// hostPorts to refer to.
func validateEndpoints(spec *tarsv1beta1.TServerSpec, fld *field.Path) ([]tarsv1beta1.Endpoint, field.ErrorList) {
	var own, other, list string
	var present, otherPresent bool
	switch spec.SubType {
	case tarsv1beta1.SubTypeTars:
		own, other, list = "tars", "normal", "servants"
		present, otherPresent = spec.Tars != nil, spec.Normal != nil
	case tarsv1beta1.SubTypeNormal:
		own, other, list = "normal", "tars", "ports"
		present, otherPresent = spec.Normal != nil, spec.Tars != nil
	default:
		return nil, field.ErrorList{field.NotSupported(fld.Child("subType"), spec.SubType,
			[]tarsv1beta1.SubType{tarsv1beta1.SubTypeTars, tarsv1beta1.SubTypeNormal})}
	}
	var errs field.ErrorList
	eps := spec.Endpoints()
	if present {
		errs = validateEndpointList(eps, fld.Child(own, list))
	} else {
		errs = append(errs, field.Required(fld.Child(own), "required when subType is "+own))
	}
	if otherPresent {
		errs = append(errs, field.Forbidden(fld.Child(other), "must be empty when subType is "+own))
	}
	return eps, errs
}

func validateEndpointList(eps []tarsv1beta1.Endpoint, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	seenNames := sets.New[string]()
	seenPorts := sets.New[int32]()
	for i, ep := range eps {
		p := fld.Index(i)
		errs = append(errs, validateIdentifier(ep.Name, p.Child("name"))...)
		// Names become Service port names, which are lower case: "LogObj" and "logobj" collide.
		if key := strings.ToLower(ep.Name); seenNames.Has(key) {
			errs = append(errs, field.Duplicate(p.Child("name"), ep.Name))
		} else {
			seenNames.Insert(key)
		}
		errs = append(errs, validatePort(ep.Port, p.Child("port"))...)
		if seenPorts.Has(ep.Port) {
			errs = append(errs, field.Duplicate(p.Child("port"), ep.Port))
		}
		seenPorts.Insert(ep.Port)
	}
	return errs
}

func validatePort(port int32, fld *field.Path) field.ErrorList {
	return invalidEach(fld, port, validation.IsValidPortNum(int(port)))
}

// sparedRelease restates validateRelease for the match condition.
var sparedRelease = []string{"(!has(object.spec.release) || (has(object.spec.release.id) && " +
	"object.spec.release.id != '' && has(object.spec.release.image) && object.spec.release.image.trim() != '' && " +
	"(!has(object.spec.release.secret) || object.spec.release.secret == '')))"}

func validateRelease(r *tarsv1beta1.TServerRelease, fld *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if r.ID == "" {
		errs = append(errs, field.Required(fld.Child("id"), ""))
	}
	if strings.TrimSpace(r.Image) == "" {
		errs = append(errs, field.Required(fld.Child("image"), "the release's container image"))
	}
	if r.Secret != "" {
		errs = append(errs, dnsSubdomain(r.Secret, fld.Child("secret"))...)
	}
	return errs
}

// sparedReplicas restates validateK8S's rules on replicas for the match condition (the
// schema holds the maximum).
var sparedReplicas = []string{"(!has(object.spec.k8s.replicas) || object.spec.k8s.replicas >= 0)"}

func (o ValidationOptions) validateK8S(k *tarsv1beta1.TServerK8S, endpoints []tarsv1beta1.Endpoint,
	fld *field.Path) field.ErrorList {
	errs := apivalidation.ValidateNonnegativeField(int64(k.Replicas), fld.Child("replicas"))
	if k.Replicas > tarsv1beta1.MaxReplicas {
		errs = append(errs, field.Invalid(fld.Child("replicas"), k.Replicas, fmt.Sprintf("must be no more than %d, "+
			"the most nodes a cluster is meant to have (a replica with node-local volumes needs a node of its own)",
			tarsv1beta1.MaxReplicas)))
	}
	if k.ServiceAccount != "" {
		errs = append(errs, dnsSubdomain(k.ServiceAccount, fld.Child("serviceAccount"))...)
	}
	errs = append(errs, validateEnv(k.Env, fld.Child("env"))...)
	errs = append(errs, validateEnvFrom(k.EnvFrom, fld.Child("envFrom"))...)
	errs = append(errs, validateHostPorts(k.HostPorts, endpoints, k.HostNetwork, fld.Child("hostPorts"))...)
	for i, req := range k.NodeSelector {
		errs = append(errs, validateNodeSelectorRequirement(req, fld.Child("nodeSelector").Index(i))...)
	}
	if p := k.PodManagementPolicy; p != "" && p != appsv1.ParallelPodManagement && p != appsv1.OrderedReadyPodManagement {
		errs = append(errs, field.NotSupported(fld.Child("podManagementPolicy"), p,
			[]appsv1.PodManagementPolicyType{appsv1.ParallelPodManagement, appsv1.OrderedReadyPodManagement}))
	}
	errs = append(errs, validateUpdateStrategy(&k.UpdateStrategy, fld.Child("updateStrategy"))...)
	errs = append(errs, validateResources(&k.Resources, fld.Child("resources"))...)
	if p := k.ImagePullPolicy; p != "" && p != corev1.PullAlways && p != corev1.PullNever && p != corev1.PullIfNotPresent {
		errs = append(errs, field.NotSupported(fld.Child("imagePullPolicy"), p,
			[]corev1.PullPolicy{corev1.PullAlways, corev1.PullNever, corev1.PullIfNotPresent}))
	}
	for i, gate := range k.ReadinessGates {
		errs = append(errs, invalidEach(fld.Child("readinessGates").Index(i), gate, validation.IsQualifiedName(gate))...)
	}
	errs = append(errs, o.validateMounts(k.Mounts, fld.Child("mounts"))...)
	return errs
}

func dnsSubdomain(value string, fld *field.Path) field.ErrorList {
	return invalidEach(fld, value, validation.IsDNS1123Subdomain(value))
}

// invalidEach turns the messages of one of Kubernetes' validation helpers into errors at fld.
func invalidEach(fld *field.Path, value any, msgs []string) field.ErrorList {
	errs := make(field.ErrorList, 0, len(msgs))
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(fld, value, msg))
	}
	return errs
}

// sparedEnv restates validateEnv for the match condition.
var sparedEnv = []string{"(!has(object.spec.k8s.env) || object.spec.k8s.env.all(e, has(e.name) && " +
	"e.name.matches('^[ -<>-~]+$') && !(has(e.value) && e.value != '' && has(e.valueFrom))))"}

func validateEnv(env []corev1.EnvVar, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range env {
		p := fld.Index(i)
		if e.Name == "" {
			errs = append(errs, field.Required(p.Child("name"), ""))
		}
		errs = append(errs, invalidEach(p.Child("name"), e.Name, validation.IsRelaxedEnvVarName(e.Name))...)
		if e.Value != "" && e.ValueFrom != nil {
			errs = append(errs, field.Invalid(p.Child("valueFrom"), "",
				"may not be specified when `value` is not empty"))
		}
	}
	return errs
}

func validateEnvFrom(envFrom []corev1.EnvFromSource, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range envFrom {
		p := fld.Index(i)
		switch {
		case e.ConfigMapRef == nil && e.SecretRef == nil:
			errs = append(errs, field.Required(p, "one of configMapRef or secretRef"))
		case e.ConfigMapRef != nil && e.SecretRef != nil:
			errs = append(errs, field.Forbidden(p, "only one of configMapRef or secretRef may be set"))
		case e.ConfigMapRef != nil && e.ConfigMapRef.Name == "":
			errs = append(errs, field.Required(p.Child("configMapRef", "name"), ""))
		case e.SecretRef != nil && e.SecretRef.Name == "":
			errs = append(errs, field.Required(p.Child("secretRef", "name"), ""))
		}
	}
	return errs
}

func validateHostPorts(hostPorts []tarsv1beta1.TK8SHostPort, endpoints []tarsv1beta1.Endpoint, hostNetwork bool,
	fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := make([]string, 0, len(endpoints))
	for _, ep := range endpoints {
		names = append(names, ep.Name)
	}
	seenRefs := sets.New[string]()
	seenPorts := sets.New[int32]()
	for i, hp := range hostPorts {
		p := fld.Index(i)
		idx := slices.Index(names, hp.NameRef)
		switch {
		case hp.NameRef == "":
			errs = append(errs, field.Required(p.Child("nameRef"), "the name of a servant or port of this server"))
		case idx < 0:
			errs = append(errs, field.NotSupported(p.Child("nameRef"), hp.NameRef, names))
		case seenRefs.Has(hp.NameRef):
			errs = append(errs, field.Duplicate(p.Child("nameRef"), hp.NameRef))
		case hostNetwork && hp.Port != endpoints[idx].Port:
			// In the node's network namespace the container port is the node's port.
			errs = append(errs, field.Invalid(p.Child("port"), hp.Port,
				fmt.Sprintf("must equal %s's port %d when hostNetwork is true", hp.NameRef, endpoints[idx].Port)))
		}
		seenRefs.Insert(hp.NameRef)
		errs = append(errs, validatePort(hp.Port, p.Child("port"))...)
		if seenPorts.Has(hp.Port) {
			errs = append(errs, field.Duplicate(p.Child("port"), hp.Port))
		}
		seenPorts.Insert(hp.Port)
	}
	return errs
}

// validateNodeSelectorRequirement follows the rules Kubernetes applies to node affinity.
func validateNodeSelectorRequirement(req corev1.NodeSelectorRequirement, fld *field.Path) field.ErrorList {
	errs := invalidEach(fld.Child("key"), req.Key, validation.IsQualifiedName(req.Key))
	values := fld.Child("values")
	switch req.Operator {
	case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
		if len(req.Values) == 0 {
			errs = append(errs, field.Required(values, "must be specified when operator is In or NotIn"))
		}
	case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
		if len(req.Values) > 0 {
			errs = append(errs, field.Forbidden(values, "may not be specified when operator is Exists or DoesNotExist"))
		}
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if len(req.Values) != 1 {
			errs = append(errs, field.Required(values, "must be a single integer when operator is Gt or Lt"))
		} else if _, err := strconv.ParseInt(req.Values[0], 10, 64); err != nil {
			errs = append(errs, field.Invalid(values.Index(0), req.Values[0], "must be an integer when operator is Gt or Lt"))
		}
	default:
		errs = append(errs, field.NotSupported(fld.Child("operator"), req.Operator, []corev1.NodeSelectorOperator{
			corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn, corev1.NodeSelectorOpExists,
			corev1.NodeSelectorOpDoesNotExist, corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt,
		}))
	}
	for i, v := range req.Values {
		errs = append(errs, invalidEach(values.Index(i), v, validation.IsValidLabelValue(v))...)
	}
	return errs
}

// sparedUpdateStrategy restates validateUpdateStrategy for the match condition: the default
// strategy only.
var sparedUpdateStrategy = []string{"(!has(object.spec.k8s.updateStrategy) || " +
	"(!has(object.spec.k8s.updateStrategy.rollingUpdate) && (!has(object.spec.k8s.updateStrategy.type) || " +
	"object.spec.k8s.updateStrategy.type == 'RollingUpdate')))"}

func validateUpdateStrategy(s *appsv1.StatefulSetUpdateStrategy, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch s.Type {
	case "", appsv1.RollingUpdateStatefulSetStrategyType:
	case appsv1.OnDeleteStatefulSetStrategyType:
		if s.RollingUpdate != nil {
			errs = append(errs, field.Forbidden(fld.Child("rollingUpdate"), "only allowed when type is RollingUpdate"))
		}
	default:
		errs = append(errs, field.NotSupported(fld.Child("type"), s.Type, []appsv1.StatefulSetUpdateStrategyType{
			appsv1.RollingUpdateStatefulSetStrategyType, appsv1.OnDeleteStatefulSetStrategyType,
		}))
	}
	if s.RollingUpdate != nil && s.RollingUpdate.Partition != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*s.RollingUpdate.Partition),
			fld.Child("rollingUpdate", "partition"))...)
	}
	return errs
}

func validateResources(r *corev1.ResourceRequirements, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for name, request := range r.Requests {
		if request.Sign() < 0 {
			errs = append(errs, field.Invalid(fld.Child("requests").Key(string(name)), request.String(),
				"must be greater than or equal to 0"))
		}
		if limit, ok := r.Limits[name]; ok && request.Cmp(limit) > 0 {
			errs = append(errs, field.Invalid(fld.Child("requests").Key(string(name)), request.String(),
				fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String())))
		}
	}
	for name, limit := range r.Limits {
		if limit.Sign() < 0 {
			errs = append(errs, field.Invalid(fld.Child("limits").Key(string(name)), limit.String(),
				"must be greater than or equal to 0"))
		}
	}
	return errs
}

// sparedMounts restates validateMounts for the match condition: tLocalVolume and emptyDir
// mounts (whose fields the schema checks) at distinct clean absolute paths, without subPaths.
var sparedMounts = []string{"(!has(object.spec.k8s.mounts) || object.spec.k8s.mounts.all(m, " +
	"has(m.mountPath) && m.mountPath.matches('^(/[^/]+)+$') && " +
	"!m.mountPath.split('/').exists(p, p == '.' || p == '..') && " +
	"object.spec.k8s.mounts.filter(n, has(n.mountPath) && n.mountPath == m.mountPath).size() == 1 && " +
	"(!has(m.subPath) || m.subPath == '') && (!has(m.subPathExpr) || m.subPathExpr == '') && has(m.source) && " +
	"(has(m.source.tLocalVolume) || has(m.source.emptyDir))))"}

func (o ValidationOptions) validateMounts(mounts []tarsv1beta1.TK8SMount, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	seenNames := sets.New[string]()
	seenPaths := sets.New[string]()
	for i := range mounts {
		m := &mounts[i]
		p := fld.Index(i)
		errs = append(errs, validateMountName(m.Name, p.Child("name"))...)
		if seenNames.Has(m.Name) {
			errs = append(errs, field.Duplicate(p.Child("name"), m.Name))
		}
		seenNames.Insert(m.Name)

		switch {
		case m.MountPath == "":
			errs = append(errs, field.Required(p.Child("mountPath"), "the absolute path in the container"))
		case !path.IsAbs(m.MountPath):
			errs = append(errs, field.Invalid(p.Child("mountPath"), m.MountPath, "must be an absolute path"))
		case seenPaths.Has(path.Clean(m.MountPath)):
			errs = append(errs, field.Duplicate(p.Child("mountPath"), m.MountPath))
		}
		seenPaths.Insert(path.Clean(m.MountPath))

		if m.SubPath != "" && m.SubPathExpr != "" {
			errs = append(errs, field.Invalid(p.Child("subPathExpr"), m.SubPathExpr,
				"subPathExpr and subPath are mutually exclusive"))
		}
		errs = append(errs, validateRelativePath(m.SubPath, p.Child("subPath"))...)
		errs = append(errs, validateRelativePath(m.SubPathExpr, p.Child("subPathExpr"))...)
		errs = append(errs, o.validateMountSource(&m.Source, p.Child("source"))...)
	}
	return errs
}

func validateMountName(name string, fld *field.Path) field.ErrorList {
	if name == tarsv1beta1.DelayBindVolumeName {
		return field.ErrorList{field.Invalid(fld, name,
			"is reserved: the operator adds a claim of this name to pin servers with hostNetwork, hostIPC or hostPorts "+
				"to their node")}
	}
	return invalidEach(fld, name, validation.IsDNS1123Label(name))
}

// validateRelativePath accepts an empty path or a relative one that does not climb with "..".
func validateRelativePath(p string, fld *field.Path) field.ErrorList {
	if p == "" {
		return nil
	}
	if path.IsAbs(p) {
		return field.ErrorList{field.Invalid(fld, p, "must be a relative path")}
	}
	if slices.Contains(strings.Split(p, "/"), "..") {
		return field.ErrorList{field.Invalid(fld, p, "must not contain '..'")}
	}
	return nil
}

// sourceNames lists the source fields a mount has set, by their JSON names.
func sourceNames(s *tarsv1beta1.TK8SMountSource) []string {
	var names []string
	for _, src := range []struct {
		name string
		set  bool
	}{
		{"tLocalVolume", s.TLocalVolume != nil},
		{"hostPath", s.HostPath != nil},
		{"emptyDir", s.EmptyDir != nil},
		{"secret", s.Secret != nil},
		{"configMap", s.ConfigMap != nil},
		{"downwardAPI", s.DownwardAPI != nil},
		{"persistentVolumeClaim", s.PersistentVolumeClaim != nil},
		{"persistentVolumeClaimTemplate", s.PersistentVolumeClaimTemplate != nil},
	} {
		if src.set {
			names = append(names, src.name)
		}
	}
	return names
}

func (o ValidationOptions) validateMountSource(s *tarsv1beta1.TK8SMountSource, fld *field.Path) field.ErrorList {
	switch set := sourceNames(s); len(set) {
	case 0:
		return field.ErrorList{field.Required(fld, "exactly one volume source must be set: one of tLocalVolume, "+
			"hostPath, emptyDir, secret, configMap, downwardAPI, persistentVolumeClaim, persistentVolumeClaimTemplate")}
	case 1:
	default:
		return field.ErrorList{field.Forbidden(fld, "exactly one volume source must be set, found "+strings.Join(set, ", "))}
	}

	var errs field.ErrorList
	switch {
	case s.TLocalVolume != nil:
		errs = append(errs, validateLocalVolume(s.TLocalVolume, fld.Child("tLocalVolume"))...)
	case s.HostPath != nil:
		errs = append(errs, o.validateHostPath(s.HostPath.Path, fld.Child("hostPath", "path"))...)
	case s.Secret != nil:
		if s.Secret.SecretName == "" {
			errs = append(errs, field.Required(fld.Child("secret", "secretName"), ""))
		}
	case s.ConfigMap != nil:
		if s.ConfigMap.Name == "" {
			errs = append(errs, field.Required(fld.Child("configMap", "name"), ""))
		}
	case s.PersistentVolumeClaim != nil:
		if s.PersistentVolumeClaim.ClaimName == "" {
			errs = append(errs, field.Required(fld.Child("persistentVolumeClaim", "claimName"), ""))
		}
	case s.PersistentVolumeClaimTemplate != nil:
		errs = append(errs, validateClaimTemplate(s.PersistentVolumeClaimTemplate,
			fld.Child("persistentVolumeClaimTemplate"))...)
	}
	return errs
}

// validateHostPath accepts an absolute host path that neither is nor holds nor lies under the host
// root: mounting it would give the server the node-local volumes of every server on the node.
// The path is compared cleaned ("//", "/./", "..", a trailing slash), as the node resolves it;
// symbolic links on the node are beyond what admission can see.
func (o ValidationOptions) validateHostPath(p string, fld *field.Path) field.ErrorList {
	if !path.IsAbs(p) {
		return field.ErrorList{field.Invalid(fld, p, "must be an absolute path")}
	}
	root, clean := o.hostRoot(), path.Clean(p)
	if within(clean, root) || within(root, clean) {
		return field.ErrorList{field.Invalid(fld, p, fmt.Sprintf("must not be the host root %s, a directory under it or "+
			"one above it: the node-local volumes of every server on the node live there; "+
			"declare a tLocalVolume instead", root))}
	}
	return nil
}

// within says whether the clean absolute path p is dir or lies under it.
func within(p, dir string) bool {
	return p == dir || dir == "/" || strings.HasPrefix(p, dir+"/")
}

func validateLocalVolume(lv *tarsv1beta1.TLocalVolume, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, f := range []struct {
		name, value, pattern, hint string
		re                         *regexp.Regexp
	}{
		{"uid", lv.UID, tarsv1beta1.LocalVolumeIDPattern,
			"a decimal user id from 0 to 999999 without leading zeros", localVolumeIDRE},
		{"gid", lv.GID, tarsv1beta1.LocalVolumeIDPattern,
			"a decimal group id from 0 to 999999 without leading zeros", localVolumeIDRE},
		{"mode", lv.Mode, tarsv1beta1.LocalVolumeModePattern, "three octal digits, each 1 to 7, e.g. 755", localVolumeMode},
	} {
		if !f.re.MatchString(f.value) {
			errs = append(errs, field.Invalid(fld.Child(f.name), f.value, fmt.Sprintf("must match %s (%s)", f.pattern, f.hint)))
		}
	}
	return errs
}

func validateClaimTemplate(pvc *corev1.PersistentVolumeClaim, fld *field.Path) field.ErrorList {
	var errs field.ErrorList
	spec := fld.Child("spec")
	if len(pvc.Spec.AccessModes) == 0 {
		errs = append(errs, field.Required(spec.Child("accessModes"), "at least one access mode"))
	}
	if _, ok := pvc.Spec.Resources.Requests[corev1.ResourceStorage]; !ok {
		errs = append(errs, field.Required(spec.Child("resources", "requests", "storage"), "the storage size to request"))
	}
	// Node-local volumes match claims by labels that a template may give itself: a template of
	// their class could bind another server's volume, and its data.
	if sc := pvc.Spec.StorageClassName; sc != nil && *sc == tarsv1beta1.StorageClassName {
		errs = append(errs, field.Invalid(spec.Child("storageClassName"), *sc,
			"holds the node-local volumes of tLocalVolume mounts, which a claim template could take from other "+
				"servers; declare the mount with tLocalVolume instead"))
	}
	return errs
}
