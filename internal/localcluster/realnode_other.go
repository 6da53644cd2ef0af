//go:build !linux

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

package localcluster

import (
	"context"
	"errors"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

var errRealNodeOS = errors.New("Linux (containers, cgroups and mounts)")

func realNodeOS() error { return errRealNodeOS }

func realNodeFree() error { return errRealNodeOS }

func prepareAPIServerForRealNode(*envtest.Environment, string) error { return errRealNodeOS }

func (c *Cluster) startRealNode(context.Context, string, RealNode) error { return errRealNodeOS }

type realNodeLock struct{}

func lockRealNode(string) (*realNodeLock, error) { return nil, errRealNodeOS }

func (*realNodeLock) release() error { return nil }

// unmountBelow has nothing to do: a real node, which mounts, runs on Linux only.
func unmountBelow(string) error { return nil }
