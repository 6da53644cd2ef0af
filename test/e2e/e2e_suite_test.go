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

// Package e2e runs the seed's story on the local cluster that `make run` uses: a real
// kube-controller-manager (StatefulSet controller, PV binder, garbage collector), a real
// scheduler, simulated nodes, the operator's manager and one agent per node.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/localcluster"
)

const (
	// gcGrace is the agents' grace period for unneeded volumes, short for the test.
	gcGrace = 5 * time.Second
	// nodeLossGrace is the manager's --node-loss-grace, short for the test.
	nodeLossGrace = 5 * time.Second
	// ineligibleNode has no tars.io/SupportLocalVolume label.
	ineligibleNode = "node-4"
	timeout        = 90 * time.Second
	interval       = 250 * time.Millisecond
)

var (
	ctx       context.Context
	cancel    context.CancelFunc
	cluster   *localcluster.Cluster
	k8sClient client.Client
	repoRoot  = filepath.Join("..", "..")
	// eligibleNodes may hold real volumes.
	eligibleNodes = []string{"node-1", "node-2", "node-3"}
	// noRealNode says why the cluster has no real node (realnode_test.go), when it has none.
	noRealNode error
	// failures are the failed specs' messages, kept to print them last.
	failures []string
)

// failureEcho is how much of a failure's message TestE2E prints again at the very end.
const failureEcho = 4000

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	if RunSpecs(t, "End-to-end suite") {
		return
	}
	// A CI log is often read from its end, where Ginkgo's summary names the failed specs but
	// not why they failed, nor the seed that reruns them: say both just before go test's FAIL.
	seed := GinkgoRandomSeed()
	for _, f := range failures {
		f = strings.Join(strings.Fields(f), " ") // one line
		if r := []rune(f); len(r) > failureEcho {
			f = string(r[:failureEcho]) + "…"
		}
		fmt.Printf("FAILED (rerun with -ginkgo.seed %d): %s\n", seed, f)
	}
}

var _ = ReportAfterSuite("the failures, printed again last", func(report Report) {
	for _, spec := range report.SpecReports {
		if spec.Failed() {
			name := spec.FullText()
			if name == "" { // a suite node
				name = spec.LeafNodeType.String()
			}
			failures = append(failures, fmt.Sprintf("%s: %s (%s)", name, spec.Failure.Message, spec.Failure.Location))
		}
	}
})

var _ = BeforeSuite(func() {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			Fail(fmt.Sprintf("the agents give volume directories the owners claims ask for (uid 1000), which needs root; "+
				"under CI this runs as uid %d", os.Geteuid()))
		}
		Skip(fmt.Sprintf("skipped: the agents give volume directories the owners claims ask for (uid 1000), which "+
			"needs root; this runs as uid %d", os.Geteuid()))
	}
	ctx, cancel = context.WithCancel(context.Background())
	binDir := os.Getenv("KUBEBUILDER_ASSETS")
	if binDir == "" {
		Fail("KUBEBUILDER_ASSETS must name the directory of the Kubernetes binaries; run `make test-e2e`")
	}
	// Under .local/ like make run's, and kept after the run for debugging.
	stateDir, err := filepath.Abs(filepath.Join(repoRoot, ".local", "e2e"))
	Expect(err).NotTo(HaveOccurred())

	By("building the manager and agent binaries")
	operator := filepath.Join(stateDir, "tserver-operator")
	agentBinary := filepath.Join(stateDir, "tserver-agent")
	for binary, pkg := range map[string]string{operator: "./cmd", agentBinary: "./cmd/agent"} {
		build := exec.Command("go", "build", "-o", binary, pkg)
		build.Dir = repoRoot
		out, err := build.CombinedOutput()
		Expect(err).NotTo(HaveOccurred(), string(out))
	}

	By("starting the local cluster with four nodes, one of them without tars.io/SupportLocalVolume")
	nodes := make([]localcluster.Node, 0, 4)
	for _, name := range eligibleNodes {
		nodes = append(nodes, localcluster.Node{Name: name, Labels: map[string]string{
			"tars.io/node": "true", tarsv1beta1.LabelSupportLocalVolume: "true",
		}})
	}
	nodes = append(nodes, localcluster.Node{Name: ineligibleNode, Labels: map[string]string{"tars.io/node": "true"}})
	realNode := startsRealNode(binDir)
	cluster, err = localcluster.Start(ctx, localcluster.Options{
		RealNode:     realNode,
		BinaryDir:    binDir,
		StateDir:     stateDir,
		CRDPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		WebhookPaths: []string{filepath.Join(repoRoot, "config", "webhook", "manifests.yaml")},
		Manifests:    []string{filepath.Join(repoRoot, "config", "storageclass")},
		Nodes:        nodes,
		// NotReady 20 s after a node is powered off, not 50 s.
		ControllerManagerFlags: []string{"--node-monitor-grace-period=20s"},
		// The scheduler's queue: each pod's events, attempts and reasons, to tell in the kept logs
		// why a replica waits (a few thousand lines).
		SchedulerFlags: []string{"--v=4"},
	})
	Expect(err).NotTo(HaveOccurred())
	GinkgoWriter.Printf("Cluster state and logs: %s\n", cluster.StateDir)
	DeferCleanup(func() { GinkgoWriter.Printf("Component logs: %s\n", cluster.LogDir) })

	_, err = cluster.StartManager(ctx, operator, nil, "--node-loss-grace="+nodeLossGrace.String())
	Expect(err).NotTo(HaveOccurred())
	_, err = cluster.StartAgents(ctx, agentBinary, "--gc-grace-period="+gcGrace.String(), "--resync-period=2s",
		"--orphan-scan-interval=10s", "--usage-interval=2s")
	Expect(err).NotTo(HaveOccurred())
	if realNode != nil {
		By("deploying the agent DaemonSet of config/default onto the real node")
		Expect(cluster.DeployAgent(ctx, filepath.Join(os.Getenv("IMAGE_DIR"), "deploy.yaml"), os.Getenv("LOCAL_IMG"),
			"--gc-grace-period="+gcGrace.String(), "--resync-period=2s")).To(Succeed())
	}

	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(tarsv1beta1.AddToScheme(scheme)).To(Succeed())
	k8sClient, err = client.New(cluster.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
})

// startsRealNode is the real node the cluster starts with, or nil, noRealNode then saying why
// (the real-node specs are skipped, loudly): the machine cannot run one, or `make images` has not
// run. Under CI=true there must be one.
func startsRealNode(binDir string) *localcluster.RealNode {
	imageDir := os.Getenv("IMAGE_DIR")
	noRealNode = localcluster.RealNodeSupport(binDir)
	if noRealNode == nil && (imageDir == "" || os.Getenv("LOCAL_IMG") == "") {
		noRealNode = fmt.Errorf("IMAGE_DIR and LOCAL_IMG must name the images `make images` builds; run `make test-e2e`")
	}
	var realNode *localcluster.RealNode
	if noRealNode == nil {
		realNode, noRealNode = localcluster.LocalRealNode(imageDir)
	}
	if noRealNode != nil {
		if os.Getenv("CI") == "true" {
			Fail(fmt.Sprintf("under CI the real-node specs must run: %v", noRealNode))
		}
		notice := fmt.Sprintf("\n*** THE REAL-NODE SPECS WILL BE SKIPPED: %v ***\n\n", noRealNode)
		GinkgoWriter.Print(notice)
		fmt.Fprint(os.Stderr, notice)
	}
	return realNode
}

var _ = AfterSuite(func() {
	if cluster != nil {
		Expect(cluster.Stop()).To(Succeed())
	}
	if cancel != nil {
		cancel()
	}
})
