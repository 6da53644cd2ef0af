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

// Package testenv sets up the envtest API servers of the test suites: the Kubernetes binaries
// `make kube-binaries` built, and the repository's manifests found from wherever a test runs.
package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// New is an envtest environment on the binaries of KUBEBUILDER_ASSETS, or else those `make
// kube-binaries` built for the Kubernetes version of k8s.io/api (bin/k8s/<version>, as under
// `make test`; a run from an IDE finds them too), with the TServer CRD installed if crd.
func New(crd bool) *envtest.Environment {
	env := &envtest.Environment{}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		env.BinaryAssetsDirectory = BinaryDir()
	}
	if crd {
		env.CRDDirectoryPaths = []string{Path("config", "crd", "bases")}
		env.ErrorIfCRDPathMissing = true
	}
	return env
}

// Path is a path in the repository, elements joined below its root.
func Path(elem ...string) string {
	return filepath.Join(append([]string{root()}, elem...)...)
}

// root is the repository's root: the nearest directory at or above the working directory that
// holds go.mod. Tests run in their package's directory.
func root() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			panic(fmt.Sprintf("no go.mod at or above %s", dir))
		}
	}
}

// BinaryDir is where `make kube-binaries` puts the Kubernetes binaries of the version go.mod
// requires k8s.io/api at (v0.x.y is Kubernetes v1.x.y), as the Makefile's KUBE_BIN_DIR; "" when
// go.mod does not say.
func BinaryDir() string {
	data, err := os.ReadFile(Path("go.mod"))
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(data)) {
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "k8s.io/api" {
			return Path("bin", "k8s", strings.Replace(fields[1], "v0.", "v1.", 1))
		}
	}
	return ""
}
