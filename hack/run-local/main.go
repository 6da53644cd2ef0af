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

// Command run-local is what `make run` runs: a local cluster (internal/localcluster) with the
// operator's manager serving its webhooks to it, until Ctrl-C or SIGTERM stops everything.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

type options struct {
	stateDir   string
	binDir     string
	manager    string
	crdDir     string
	webhookDir string
	manifests  string
}

func main() {
	var o options
	flag.StringVar(&o.stateDir, "state-dir", ".local",
		"Directory for the kubeconfig, logs and cluster state; emptied at start.")
	flag.StringVar(&o.binDir, "bin-dir", "", "Directory with etcd and kube-apiserver (`make kube-binaries` builds them).")
	flag.StringVar(&o.manager, "manager", "bin/manager", "The operator binary to run as the manager.")
	flag.StringVar(&o.crdDir, "crd-dir", "config/crd/bases", "CustomResourceDefinitions to install.")
	flag.StringVar(&o.webhookDir, "webhook-dir", "config/webhook/manifests.yaml", "Webhook configurations to register.")
	flag.StringVar(&o.manifests, "manifests", "config/storageclass/t-storage-class.yaml",
		"Further objects to create (comma-separated files).")
	flag.Parse()
	if o.binDir == "" {
		fmt.Fprintln(os.Stderr, "--bin-dir is required")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) (err error) {
	start := time.Now()
	fmt.Println("Starting etcd and kube-apiserver...")
	cluster, err := localcluster.Start(ctx, localcluster.Options{
		BinaryDir:    o.binDir,
		StateDir:     o.stateDir,
		CRDPaths:     []string{o.crdDir},
		WebhookPaths: []string{o.webhookDir},
		Manifests:    strings.Split(o.manifests, ","),
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("Stopping...")
		err = errors.Join(err, cluster.Stop())
		fmt.Println("Stopped.")
	}()

	probePort, err := localcluster.FreePort()
	if err != nil {
		return err
	}
	fmt.Println("Starting the manager (controller and webhooks)...")
	manager, err := cluster.StartProcess("manager", o.manager, []string{
		"--kubeconfig=" + cluster.KubeconfigPath,
		"--webhook-cert-path=" + cluster.Webhook.CertDir,
		"--webhook-port=" + strconv.Itoa(cluster.Webhook.Port),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probePort),
		"--metrics-bind-address=0",
	}, nil, os.Stdout)
	if err != nil {
		return err
	}

	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ready := make(chan error, 1)
	go func() {
		ready <- localcluster.WaitForReady(readyCtx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort))
	}()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("the manager did not become ready (log: %s): %w", manager.LogPath, err)
		}
	case <-manager.Exited():
		return fmt.Errorf("the manager exited: %v (log: %s)", manager.Err(), manager.LogPath)
	}

	printBanner(cluster, time.Since(start))
	select {
	case <-ctx.Done():
		return nil
	case <-manager.Exited():
		return fmt.Errorf("the manager exited: %v (log: %s)", manager.Err(), manager.LogPath)
	}
}

func printBanner(c *localcluster.Cluster, took time.Duration) {
	fmt.Printf(`
================================================================================
tserver-operator is running on a local cluster (ready in %s).

  kube-apiserver + etcd   logs in %s/
  manager                 controller and admission webhooks (log above, and in %s/manager.log)

Try it, in another terminal:

  export KUBECONFIG=%s
  kubectl apply -f config/samples/                     # the seed's tarslog and tarsconfig
  kubectl get ts                                       # App, Server, Replicas, Ready
  kubectl get ts tars-tarslog -o yaml                  # defaults filled in
  kubectl apply -f config/samples/invalid/mode-750.yaml   # rejected, with the field's path
  for f in config/samples/invalid/*.yaml; do kubectl apply -f "$f"; done

Stop with Ctrl-C.
================================================================================
`, took.Round(100*time.Millisecond), relative(c.LogDir), relative(c.LogDir), relative(c.KubeconfigPath))
}

// relative shortens path to one relative to the working directory, as a user would type it.
func relative(path string) string {
	wd, err := os.Getwd()
	if err != nil {
		return path
	}
	if rel, err := filepath.Rel(wd, path); err == nil {
		return rel
	}
	return path
}
