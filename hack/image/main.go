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

// Command image builds a container image without a container engine: one layer holding the given
// files (static binaries), an entrypoint and a user, written as an image archive that
// `ctr images import` (and `docker load`) read. `make images` builds the operator's image with it,
// the binaries the Dockerfile ships, and the local cluster's pause and test images.
//
//	go run ./hack/image --tag localhost/tserver-operator:dev --output bin/images/tserver-operator.tar \
//	    --file /tserver-operator=bin/tserver-operator --file /tserver-agent=bin/tserver-agent \
//	    --entrypoint /tserver-operator --user 65532:65532
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// files is the repeated --file flag: image path = local file.
type files map[string]string

func (f files) String() string { return fmt.Sprint(map[string]string(f)) }

func (f files) Set(v string) error {
	dst, src, ok := strings.Cut(v, "=")
	if !ok || !path.IsAbs(dst) || src == "" {
		return fmt.Errorf("%q: want /path/in/image=local/file", v)
	}
	f[path.Clean(dst)] = src
	return nil
}

func main() {
	fs := files{}
	var tag, output, entrypoint, user string
	flag.StringVar(&tag, "tag", "", "The image's name and tag, e.g. localhost/tserver-operator:dev.")
	flag.StringVar(&output, "output", "", "The image archive to write.")
	flag.Var(fs, "file", "A file of the image, as /path/in/image=local/file (repeatable).")
	flag.StringVar(&entrypoint, "entrypoint", "", "The image's entrypoint (a path in the image).")
	flag.StringVar(&user, "user", "", "The user the image runs as, uid[:gid].")
	flag.Parse()
	if tag == "" || output == "" || len(fs) == 0 {
		fmt.Fprintln(os.Stderr, "--tag, --output and at least one --file are required")
		os.Exit(2)
	}
	if err := build(tag, output, fs, entrypoint, user); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func build(tag, output string, fs files, entrypoint, user string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	data, err := layerTar(fs)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		return err
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.User = user
	cfg.Config.WorkingDir = "/"
	if entrypoint != "" {
		cfg.Config.Entrypoint = []string{entrypoint}
	}
	cfg.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(output), 0o755); err != nil {
		return err
	}
	tmp := output + ".tmp"
	if err := tarball.WriteToFile(tmp, ref, img); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	if err := os.Rename(tmp, output); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("Built %s (%s) into %s\n", ref, digest, output)
	return nil
}

// layerTar is a layer holding fs, owned by root, with their parent directories and a /tmp; its
// times are fixed so that the same files give the same image.
func layerTar(fs files) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDir := func(dir string, mode int64) error {
		if dirs[dir] {
			return nil
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.TrimPrefix(dir, "/") + "/",
			Mode: mode, ModTime: epoch})
	}
	if err := addDir("/tmp", 0o1777); err != nil {
		return nil, err
	}
	for _, dst := range slices.Sorted(maps.Keys(fs)) {
		var parents []string
		for dir := path.Dir(dst); dir != "/"; dir = path.Dir(dir) {
			parents = append(parents, dir)
		}
		for _, dir := range slices.Backward(parents) {
			if err := addDir(dir, 0o755); err != nil {
				return nil, err
			}
		}
		content, err := os.ReadFile(fs[dst])
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"),
			Mode: 0o755, Size: int64(len(content)), ModTime: epoch}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
