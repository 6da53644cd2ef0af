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
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	k8sv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
	"github.com/tserver-operator/tserver-operator/internal/testenv"
	// +kubebuilder:scaffold:imports
)

// These tests use Ginkgo (BDD-style Go testing framework). Refer to
// http://onsi.github.io/ginkgo/ to learn more about Ginkgo.

var (
	ctx       context.Context
	cancel    context.CancelFunc
	testEnv   *envtest.Environment
	cfg       *rest.Config
	k8sClient client.Client
	// reconciler is the one the suite's manager runs; tests may also call it directly.
	reconciler *TServerReconciler
	// writes are the writes of the manager's client, by namespace.
	writes = &writeLog{}
	// nodeLossClock is the reconciler's clock for node losses, which the specs step past the grace.
	nodeLossClock = clocktesting.NewFakePassiveClock(time.Now())
	// managerRole is the manager's role as generated, the only one the suite's manager has;
	// managerAPIUse records what the manager did with it.
	managerRole   *rbacv1.ClusterRole
	managerAPIUse = &apiUse{}
)

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)

	RunSpecs(t, "Controller Suite")
}

var _ = BeforeSuite(func() {
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))

	ctx, cancel = context.WithCancel(context.TODO())

	var err error
	err = k8sv1beta1.AddToScheme(scheme.Scheme)
	Expect(err).NotTo(HaveOccurred())

	// +kubebuilder:scaffold:scheme

	By("bootstrapping test environment")
	testEnv = testenv.New(true)

	// cfg is defined in this file globally.
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	Expect(cfg).NotTo(BeNil())

	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())
	Expect(k8sClient).NotTo(BeNil())

	By("running the manager as a user that has only the manager's generated role")
	managerRole = bindManagerRole(ctx, k8sClient)
	user, err := testEnv.AddUser(envtest.User{Name: managerUser}, nil)
	Expect(err).NotTo(HaveOccurred())
	managerCfg := managerAPIUse.wrap(user.Config())
	userClient, err := client.New(user.Config(), client.Options{Scheme: scheme.Scheme})
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() error { // until the API server's authorizer has seen the binding
		return userClient.List(ctx, &k8sv1beta1.TServerList{})
	}, 10*time.Second).Should(Succeed())

	By("starting the controller in a manager, with the caches narrowed as in production")
	mgr, err := ctrl.NewManager(managerCfg, ctrl.Options{
		Scheme:    scheme.Scheme,
		Cache:     CacheOptions(),
		Metrics:   metricsserver.Options{BindAddress: "0"},
		NewClient: writes.newClient,
	})
	Expect(err).NotTo(HaveOccurred())
	reconciler = &TServerReconciler{
		Client:    mgr.GetClient(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("tserver-controller"),
		APIReader: mgr.GetAPIReader(),

		ProgressInterval: progressInterval,
		NodeLossGrace:    new(nodeLossGrace),
		Clock:            nodeLossClock,
	}
	Expect(reconciler.SetupWithManager(mgr)).To(Succeed())
	Expect((&ClaimLabelReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr)).To(Succeed())
	useStorageClass(k8sv1beta1.Provisioner)
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	By("tearing down the test environment")
	cancel()
	err := testEnv.Stop()
	Expect(err).NotTo(HaveOccurred())

	if suite, _ := GinkgoConfiguration(); len(suite.FocusStrings) == 0 && len(suite.SkipStrings) == 0 &&
		suite.LabelFilter == "" {
		By("checking that the manager used every verb its role grants: least privilege")
		Expect(managerAPIUse.unused(managerRole)).To(BeEmpty(),
			"granted and never used; drop them from the +kubebuilder:rbac markers (or say in unusedOnPurpose why not)")
	}
})
