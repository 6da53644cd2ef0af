package agent

import (
	"os"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tarsv1beta1 "github.com/tserver-operator/tserver-operator/api/v1beta1"
)

var _ = Describe("ZZREVIEW", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("ZZREVIEW one transition gives one DiskFull event", func() {
		a := agents["node-b"]
		DeferCleanup(func() { a.disk.Store(&roomyDisk) })
		full := roomyDisk
		full.BytesAvailable = 5 << 30
		a.disk.Store(&full)
		Eventually(func() string {
			n := &corev1.Node{}
			Expect(k8sClient.Get(ctx, client.ObjectKey{Name: "node-b"}, n)).To(Succeed())
			return n.Labels[tarsv1beta1.LabelDiskFull]
		}, timeout, interval).Should(Equal("space"))
		time.Sleep(3 * time.Second)
		for _, e := range eventsAbout("Node", "node-b") {
			GinkgoWriter.Printf("ZZEVENT %s series=%+v note=%s\n", e.Reason, e.Series, e.Note)
		}
	})

	It("ZZREVIEW a claim whose directory holds its data is refused when a sibling of its pod is new", func() {
		a := agents["node-b"]
		DeferCleanup(func() { a.disk.Store(&roomyDisk) })
		full := roomyDisk
		full.BytesAvailable = 5 << 30
		a.disk.Store(&full)
		Expect(writeSentinel(mkdir(dirOn("node-b", ns, "remote-log-dir")))).NotTo(BeEmpty())
		back := newClaim(ns, "remote-log-dir", 0, seedOwnership)
		newSibling := newClaim(ns, "data", 0, seedOwnership)
		schedule(back, "node-b")
		schedule(newSibling, "node-b")
		Eventually(selectedNode(back), timeout, interval).Should(BeEmpty(),
			"the claim whose data is here is handed back: its pod will be placed elsewhere")
		GinkgoWriter.Printf("ZZREFUSED %s\n", claimAnnotation(back, tarsv1beta1.AnnotationProvisioningRefused)())
	})
})

func mkdir(p string) string {
	Expect(osMkdirAll(p)).To(Succeed())
	return p
}

func osMkdirAll(p string) error { return os.MkdirAll(p, 0o755) }
