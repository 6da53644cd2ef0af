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

// Package localcluster runs a Kubernetes cluster on this machine from the binaries that
// `make kube-binaries` builds: etcd and kube-apiserver (through controller-runtime's envtest),
// with the operator's CRDs installed and its webhook configurations registered against a webhook
// server on localhost, so the API server really calls it. With simulated nodes, it runs
// kube-controller-manager, kube-scheduler and kwok too, and the operator's agent on each node
// (StartAgents); nodes can be added (AddNodes), lost and brought back (PowerOff, PowerOn).
// `make run` and the end-to-end tests both use it; everything it keeps (kubeconfig,
// certificates, etcd data, logs) lives in one state directory that each start cleans.
package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Options say where the cluster's inputs are and where it keeps its state.
type Options struct {
	// BinaryDir holds etcd and kube-apiserver (bin/k8s/<version>).
	BinaryDir string
	// StateDir holds everything the cluster writes; it is emptied at start.
	StateDir string
	// CRDPaths are files or directories of CustomResourceDefinitions to install.
	CRDPaths []string
	// WebhookPaths are files or directories of webhook configurations to register; their
	// clientConfig is pointed at the local webhook server.
	WebhookPaths []string
	// Manifests are YAML files (or directories of them) of further objects to create once the
	// API server runs.
	Manifests []string
	// Nodes are simulated nodes. With any, kube-controller-manager, kube-scheduler and kwok run
	// too, so that StatefulSets get pods and claims get bound as in a real cluster.
	Nodes []Node
	// ControllerManagerFlags are further flags of kube-controller-manager (the bench's
	// --trace-pv-controller turns up its PV controller's log with one). A node-loss test may
	// shorten --node-monitor-grace-period (50s by default), after which a powered-off node is
	// NotReady; as the flag's help says, it must be a few times the interval of the nodes'
	// heartbeats, here the 10 s at which kwok renews node leases: 20s, not 10s, with which
	// healthy nodes flap.
	ControllerManagerFlags []string
	// SchedulerFlags are further flags of kube-scheduler (the bench's --scheduler-qps raises its
	// client's rate limit with --kube-api-qps and --kube-api-burst, which it honours without
	// --config).
	SchedulerFlags []string
	// RealNode, when not nil, is a node of real machinery to run beside the simulated ones (see
	// RealNode); it needs Nodes too.
	RealNode *RealNode
	// Notices, when not nil, is told of what happens to the cluster's processes by itself: a
	// manager or agent that exited and is started again.
	Notices io.Writer
}

// Cluster is a running local cluster.
type Cluster struct {
	// Config is an admin client configuration.
	Config *rest.Config
	// KubeconfigPath is an admin kubeconfig file for kubectl.
	KubeconfigPath string
	// Webhook is where the webhook server must listen for the API server to reach it.
	Webhook WebhookServing
	// LogDir holds one log file per component.
	LogDir string
	// StateDir holds everything the cluster writes.
	StateDir string
	// Nodes are the simulated nodes: those of Options.Nodes, then those AddNodes registered.
	Nodes []Node
	// SecurePorts are the local ports where kube-controller-manager and kube-scheduler serve
	// their health and metrics (HTTPS, a certificate of their own), by component name.
	SecurePorts map[string]int

	env *envtest.Environment
	// cl is an admin client, set once the nodes' components run.
	cl client.Client

	// power serialises what changes the nodes (AddNodes, StartAgents, PowerOff, PowerOn), which
	// may take long; mu guards the fields below it, briefly.
	power sync.Mutex
	mu    sync.Mutex
	// processes are those StartProcess started, oldest first; stopped is set by Stop.
	processes []*Process
	stopped   bool
	// agents are the running node agents by node; off are the nodes powered off; agentBinary and
	// agentArgs are what StartAgents was given (agentBinary is empty until it is called).
	agents      map[string]*Process
	off         map[string]bool
	agentBinary string
	agentArgs   []string
	// nodeAgentArgs are what RestartAgent gave a node's agent, after agentArgs.
	nodeAgentArgs map[string][]string
	notices       io.Writer
	// realNode is Options.RealNode; realNodeLock is held while it runs. stateLock is held while
	// the cluster runs.
	realNode     *RealNode
	realNodeLock *realNodeLock
	stateLock    *os.File
}

// WebhookServing is the address and certificate of the local webhook server.
type WebhookServing struct {
	Host    string
	Port    int
	CertDir string
}

// Start cleans the state directory, stops processes a previous run left behind, and starts
// etcd and kube-apiserver with the CRDs and webhook configurations installed.
func Start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	stateDir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(opts.BinaryDir, name)); err != nil {
			return nil, fmt.Errorf("%s not found in %s (run `make kube-binaries`): %w", name, opts.BinaryDir, err)
		}
	}
	if opts.RealNode != nil {
		if len(opts.Nodes) == 0 {
			return nil, errors.New("a real node needs simulated nodes too " +
				"(kube-controller-manager and the scheduler run with them)")
		}
		if err := RealNodeSupport(opts.BinaryDir); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	// Mounts are listed by their real paths: comparing them with a path through a symbolic link
	// would miss one, and removing the state would then reach through it.
	if stateDir, err = filepath.EvalSymlinks(stateDir); err != nil {
		return nil, err
	}
	c := &Cluster{
		LogDir: filepath.Join(stateDir, "logs"), KubeconfigPath: filepath.Join(stateDir, "kubeconfig"),
		StateDir: stateDir, agents: map[string]*Process{}, off: map[string]bool{}, notices: opts.Notices,
		nodeAgentArgs: map[string][]string{}, realNode: opts.RealNode,
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.releaseLocks())
		}
	}()
	if err := c.takeStateDir(opts.RealNode != nil); err != nil {
		return nil, err
	}
	for _, dir := range []string{c.LogDir, filepath.Join(stateDir, "etcd"), filepath.Join(stateDir, "pki")} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}

	etcdLog, err := c.logFile("etcd")
	if err != nil {
		return nil, err
	}
	apiLog, err := c.logFile("kube-apiserver")
	if err != nil {
		return nil, err
	}
	c.env = &envtest.Environment{
		BinaryAssetsDirectory: opts.BinaryDir,
		CRDDirectoryPaths:     opts.CRDPaths,
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: opts.WebhookPaths},
	}
	c.env.ControlPlane.GetAPIServer().CertDir = filepath.Join(stateDir, "pki")
	c.env.ControlPlane.GetAPIServer().Out, c.env.ControlPlane.GetAPIServer().Err = apiLog, apiLog
	c.env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(stateDir, "etcd"), Out: etcdLog, Err: etcdLog}
	if opts.RealNode != nil {
		if err := prepareAPIServerForRealNode(c.env, filepath.Join(stateDir, "pki")); err != nil {
			return nil, err
		}
	}

	if c.Config, err = c.env.Start(); err != nil {
		return nil, errors.Join(fmt.Errorf("starting etcd and kube-apiserver (logs in %s): %w", c.LogDir, err), c.env.Stop())
	}
	wh := c.env.WebhookInstallOptions
	c.Webhook = WebhookServing{Host: wh.LocalServingHost, Port: wh.LocalServingPort, CertDir: wh.LocalServingCertDir}

	if err := c.createManifests(ctx, opts.Manifests); err != nil {
		return nil, errors.Join(err, c.Stop())
	}

	admin, err := c.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var kubeconfig []byte
		if kubeconfig, err = admin.KubeConfig(); err == nil {
			err = os.WriteFile(c.KubeconfigPath, kubeconfig, 0o600)
		}
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("writing the admin kubeconfig: %w", err), c.Stop())
	}
	if len(opts.Nodes) > 0 {
		err = c.startNodes(ctx, opts.BinaryDir, opts.Nodes, opts.ControllerManagerFlags, opts.SchedulerFlags)
		if err != nil {
			return nil, errors.Join(err, c.Stop())
		}
		if opts.RealNode != nil {
			if err := c.startRealNode(ctx, opts.BinaryDir, *opts.RealNode); err != nil {
				return nil, errors.Join(err, c.Stop())
			}
		}
	}
	return c, nil
}

// takeStateDir locks the state directory for this cluster, stops what an earlier run on it left
// running, and empties what a cluster keeps there; with realNode, it takes the right to run this
// machine's real node too. Whoever may, cleans what a real node that died left on this machine.
func (c *Cluster) takeStateDir(realNode bool) (err error) {
	stateDir := c.StateDir
	// A cluster that runs on this state directory is not stale: none of it may be touched.
	if c.stateLock, _, err = lockFile(filepath.Join(stateDir, ".lock"),
		"another local cluster runs on "+stateDir); err != nil {
		return err
	}
	if err := c.stateLock.Truncate(0); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(c.stateLock, "pid %d\n", os.Getpid()); err != nil {
		return err
	}
	// What a cluster keeps in its state directory; only this is cleaned, so that another
	// cluster's state directory may live inside it (the e2e suite's .local/e2e in make run's .local).
	owned := []string{"kubeconfig", "logs", "etcd", "pki", "nodes", "kwok-stages"}
	needles := make([]string, 0, len(owned))
	for _, name := range owned {
		needles = append(needles, filepath.Join(stateDir, name))
	}
	if n := killStale(needles); n > 0 {
		fmt.Fprintf(os.Stderr, "Stopped %d process(es) left behind by an earlier run\n", n)
	}
	// Its cleaning comes with the lock; this cluster keeps the lock when it runs a real node.
	lock, lockErr := lockRealNode(stateDir)
	switch {
	case lockErr == nil && realNode:
		c.realNodeLock = lock
	case lockErr == nil:
		if err := lock.release(); err != nil {
			return err
		}
	case realNode:
		return lockErr
	}
	// A real node's kubelet mounted volumes below nodes/: removing the state must not reach
	// through them.
	if err := unmountBelow(filepath.Join(stateDir, "nodes")); err != nil {
		return err
	}
	for _, path := range needles {
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("cleaning %s: %w", path, err)
		}
	}
	return nil
}

// createManifests creates the objects of every YAML document in files; a directory stands for
// its YAML files but kustomization.yaml. An object of a kind the API server does not serve is
// left out, with a notice.
func (c *Cluster) createManifests(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	cl, err := client.New(c.Config, client.Options{})
	if err != nil {
		return err
	}
	var files []string
	for _, p := range paths {
		if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
			files = append(files, p)
			continue
		}
		matches, err := filepath.Glob(filepath.Join(p, "*.yaml"))
		if err != nil {
			return err
		}
		for _, m := range matches {
			if filepath.Base(m) != "kustomization.yaml" && filepath.Base(m) != "kustomizeconfig.yaml" {
				files = append(files, m)
			}
		}
	}
	for _, file := range files {
		objs, err := readObjects(file)
		if err != nil {
			return err
		}
		for _, obj := range objs {
			err := cl.Create(ctx, obj)
			if meta.IsNoMatchError(err) {
				// An API this release does not serve (MutatingAdmissionPolicy before 1.36): the
				// operator does without, as on such a cluster.
				c.notify(fmt.Sprintf("Left out %s %s of %s: this Kubernetes release does not serve it",
					obj.GetKind(), obj.GetName(), filepath.Base(file)))
				err = nil
			}
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating the objects of %s: %w", file, err)
			}
		}
	}
	return nil
}

// readObjects reads the objects of every YAML document in file.
func readObjects(file string) ([]*unstructured.Unstructured, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := dec.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return objs, nil
		} else if err != nil {
			return nil, fmt.Errorf("reading %s: %w", file, err)
		}
		if len(obj.Object) > 0 {
			objs = append(objs, obj)
		}
	}
}

// logPath is the file of a component's output: StateDir/logs/<name>.log.
func (c *Cluster) logPath(name string) string { return filepath.Join(c.LogDir, name+".log") }

// logFile opens a component's log file for appending.
func (c *Cluster) logFile(name string) (*os.File, error) {
	return os.OpenFile(c.logPath(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}

// notify writes a notice (a component restarted, say) to Options.Notices.
func (c *Cluster) notify(notice string) {
	if c.notices != nil {
		_, _ = fmt.Fprintf(c.notices, "%s %s\n", time.Now().Format(time.TimeOnly), notice)
	}
}

// Stop stops every process the cluster started (agents restarted by PowerOn too), newest first,
// then the real node's containers, then kube-apiserver and etcd. No process starts after it.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	processes := c.processes
	c.processes, c.stopped = nil, true
	c.mu.Unlock()
	var errs []error
	for _, p := range slices.Backward(processes) {
		errs = append(errs, p.Stop())
	}
	// The real node's containers (its agent among them) are clients of the API server too.
	errs = append(errs, c.releaseRealNode())
	if c.env != nil {
		errs = append(errs, c.env.Stop())
	}
	return errors.Join(append(errs, c.releaseLocks())...)
}

// releaseLocks releases the real node, if the cluster runs one, and the state directory.
func (c *Cluster) releaseLocks() error {
	err := c.releaseRealNode()
	if c.stateLock != nil {
		err = errors.Join(err, c.stateLock.Close())
		c.stateLock = nil
	}
	return err
}

// releaseRealNode, once the real node's kubelet and containerd have stopped, stops its containers
// and shims, unmounts what its kubelet mounted, removes its network, puts back the kernel settings
// its kubelet changed and lets another cluster run one.
func (c *Cluster) releaseRealNode() error {
	if c.realNodeLock == nil {
		return nil
	}
	err := c.realNodeLock.release()
	c.realNodeLock = nil
	return err
}

// Process is the newest process named name that runs and was not asked to stop (the manager,
// kube-controller-manager, agent-<node>...), or nil.
func (c *Cluster) Process(name string) *Process {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range slices.Backward(c.processes) {
		if p.Name == name && !p.Stopped() {
			select {
			case <-p.Exited():
			default:
				return p
			}
		}
	}
	return nil
}

// RestartAPIServer stops kube-apiserver (SIGTERM, as an upgrade does; SIGKILL if it has not
// exited after its stop timeout, as a kubelet would) and starts it again with the same flags,
// port and certificates, then waits until it is healthy; etcd keeps running. Clients meanwhile
// see their connections refused.
func (c *Cluster) RestartAPIServer() error {
	c.power.Lock()
	defer c.power.Unlock()
	api := c.env.ControlPlane.GetAPIServer()
	if err := api.Stop(); err != nil {
		c.notify(fmt.Sprintf("kube-apiserver did not stop in time and was killed: %v", err))
	} else {
		c.notify("kube-apiserver stopped; starting it again")
	}
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			time.Sleep(time.Second) // for a killed one to free its port
		}
		if err = api.Start(); err == nil {
			c.notify("kube-apiserver is healthy again")
			return nil
		}
	}
	return fmt.Errorf("starting kube-apiserver again (log %s): %w", c.logPath("kube-apiserver"), err)
}

// WaitForReady waits until url (a /readyz endpoint) answers 200.
func WaitForReady(ctx context.Context, url string) error {
	return poll(ctx, func() bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func poll(ctx context.Context, done func() bool) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// FreePort returns a TCP port on localhost that nothing listens on at the moment.
func FreePort() (int, error) {
	ports, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// FreePorts returns n different TCP ports on localhost that nothing listens on at the moment.
// Each is held until all are found: ports picked one at a time, each let go before the next,
// may be the same (a bench run's agent got one port for its probes and its metrics).
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = l.Close() }()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
