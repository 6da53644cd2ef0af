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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	certutil "k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// realNodeOS says what of Linux the real node lacks: cgroup v1 hierarchies, which it runs its
// pods in (a cgroup v2 only machine is not supported yet).
func realNodeOS() error {
	if _, err := os.Stat("/sys/fs/cgroup/memory/cgroup.procs"); err != nil {
		return errors.New("cgroup v1 hierarchies under /sys/fs/cgroup (this machine has none: cgroup v2 only " +
			"machines are not supported yet)")
	}
	return nil
}

// prepareAPIServerForRealNode has the API server serve the real node's pods as it serves a real
// cluster's: on every address of this machine (the pods reach it through the bridge), with a
// certificate valid for the `kubernetes` Service's address, and with the ServiceAccount admission
// plugin (envtest turns it off) that gives pods their API credentials; it reaches the kubelet at
// the node's address.
func prepareAPIServerForRealNode(env *envtest.Environment, pkiDir string) error {
	certPEM, keyPEM, err := certutil.GenerateSelfSignedCertKey("localhost",
		[]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(apiServiceIP), net.ParseIP(gatewayIP)}, []string{"localhost"})
	if err != nil {
		return err
	}
	// The serving certificate, then the CA that signed it.
	_, rest := pem.Decode(certPEM)
	if ca, _ := pem.Decode(rest); ca == nil {
		return errors.New("generating the API server's certificate: no CA certificate")
	}
	if err := os.WriteFile(filepath.Join(pkiDir, "apiserver.crt"), certPEM, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pkiDir, "apiserver.key"), keyPEM, 0o600); err != nil {
		return err
	}
	// envtest then writes none of its certificates: the service account signing key too.
	saCert, saKey, err := certutil.GenerateSelfSignedCertKey("service-accounts", nil, nil)
	if err != nil {
		return err
	}
	saCertOnly, _ := pem.Decode(saCert)
	if err := os.WriteFile(filepath.Join(pkiDir, "sa-signer.crt"), pem.EncodeToMemory(saCertOnly), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pkiDir, "sa-signer.key"), saKey, 0o600); err != nil {
		return err
	}
	api := env.ControlPlane.GetAPIServer()
	api.CA = rest
	api.Configure().Set("bind-address", "0.0.0.0").Disable("disable-admission-plugins").
		// The kubelet's name is no host name this machine resolves: logs and exec go to its address.
		Set("kubelet-preferred-address-types", "InternalIP")
	return nil
}

// startRealNode starts rn: containerd with its images imported, its pods' network, and a
// kubelet, and waits until the node is Ready; it is then cordoned (see Cordon).
func (c *Cluster) startRealNode(ctx context.Context, binDir string, rn RealNode) error {
	dir := c.realNodeDir(rn.Name)
	for _, d := range []string{c.HostRoot(rn.Name), filepath.Join(dir, "cni", "net.d")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	// A shared mount, as / is on systemd hosts: a disk mounted below the host root after the agent
	// started reaches the agent's container (mountPropagation: HostToContainer needs it), and the
	// kubelet's mounts stay below dir, where the clean-up finds them.
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting %s onto itself: %w", dir, err)
	}
	// A peer group of its own, not /'s (shared on systemd hosts): its mounts stay among its own.
	if err := syscall.Mount("", dir, "", syscall.MS_PRIVATE|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("making %s a private mount: %w", dir, err)
	}
	if err := syscall.Mount("", dir, "", syscall.MS_SHARED|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("making %s a shared mount: %w", dir, err)
	}
	if err := c.realNodeLock.mountHostRoot(c.HostRoot(rn.Name)); err != nil {
		return err
	}
	if err := setUpRealNodeNetwork(c.apiServerPort()); err != nil {
		return err
	}
	// Where containerd, the CNI plugins and the kubelet write whatever their configuration: made
	// and recorded here when missing, so that release removes them again.
	for _, d := range machineDirs {
		if err := c.realNodeLock.makeDirs(d); err != nil {
			return err
		}
	}
	sock := filepath.Join(dir, "containerd", "containerd.sock")
	if err := c.startContainerd(ctx, dir, sock, rn); err != nil {
		return err
	}
	if err := c.startKubelet(ctx, binDir, dir, sock, rn); err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, nodeReadyTimeout)
	defer cancel()
	var lastErr error
	err := poll(waitCtx, func() bool {
		node := &corev1.Node{}
		lastErr = c.cl.Get(waitCtx, client.ObjectKey{Name: rn.Name}, node)
		return lastErr == nil && nodeReady(node)
	})
	if err != nil {
		return fmt.Errorf("real node %s did not become Ready (kubelet's log in %s): %w", rn.Name, c.LogDir,
			errors.Join(err, lastErr))
	}
	return c.Cordon(ctx, rn.Name, true)
}

// mountHostRoot shows hostRoot at ProductionHostRoot, where the agent DaemonSet, its node
// restriction policy and the volumes it makes have it on a real node, and records the mount it
// made (release, or whoever takes the lock after a crash, unmounts that one and nothing else). It
// refuses to hide anything already there, a mount or a directory that holds files, and to follow
// a symbolic link. The mount is a slave of hostRoot's: disks mounted below the host root reach it
// (and the agent's container), while what this machine mounts at ProductionHostRoot stays out of
// the state directory.
func (l *realNodeLock) mountHostRoot(hostRoot string) error {
	if mounts, err := mountsBelow(ProductionHostRoot); err != nil || len(mounts) > 0 {
		return fmt.Errorf("%s is a mount point or has one below it (%s): a real node would hide it; unmount it first: %w",
			ProductionHostRoot, strings.Join(mounts, ", "), err)
	}
	if err := l.makeDirs(ProductionHostRoot); err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(ProductionHostRoot); err != nil || real != ProductionHostRoot {
		return fmt.Errorf("%s leads elsewhere (%s) through a symbolic link: a real node would hide what is there: %w",
			ProductionHostRoot, real, err)
	}
	entries, err := os.ReadDir(ProductionHostRoot)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s holds files (%s...): a real node would hide them behind its own host root; move them first",
			ProductionHostRoot, entries[0].Name())
	}
	if err := syscall.Mount(hostRoot, ProductionHostRoot, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s at %s: %w", hostRoot, ProductionHostRoot, err)
	}
	top, err := topMount(ProductionHostRoot)
	if err == nil && top == nil {
		err = errors.New("not in the mount table")
	}
	if err == nil {
		l.rec.HostRoot = top
		err = l.record()
	}
	if err != nil {
		return errors.Join(fmt.Errorf("recording the mount at %s: %w", ProductionHostRoot, err),
			syscall.Unmount(ProductionHostRoot, syscall.MNT_DETACH))
	}
	if err := syscall.Mount("", ProductionHostRoot, "", syscall.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making %s a slave mount: %w", ProductionHostRoot, err)
	}
	return nil
}

// topMount is the mount on top at point, or nil.
func topMount(point string) (*mount, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var top *mount
	for i := range mounts {
		if mounts[i].point == point {
			top = &mounts[i]
		}
	}
	return top, nil
}

// unmountHostRoot unmounts from ProductionHostRoot the mount mountHostRoot made, own, while it is
// the one on top; it fails when another is mounted over it.
func unmountHostRoot(own *mount) error {
	if own == nil {
		return nil
	}
	mounts, err := readMounts()
	if err != nil {
		return err
	}
	var at []mount
	for _, m := range mounts {
		if m.point == ProductionHostRoot {
			at = append(at, m)
		}
	}
	i := slices.IndexFunc(at, func(m mount) bool { return m.ID == own.ID && m.sameRoot(own.Root) })
	switch {
	case i < 0:
		return nil
	case i < len(at)-1:
		return fmt.Errorf("%s is mounted over the real node's host root at %s; unmount it, then both go at the next start",
			at[len(at)-1].Root, ProductionHostRoot)
	}
	if err := syscall.Unmount(ProductionHostRoot, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("unmounting the real node's host root from %s: %w", ProductionHostRoot, err)
	}
	return nil
}

// apiServerPort is the port the API server listens on.
func (c *Cluster) apiServerPort() int {
	port, _ := strconv.Atoi(c.env.ControlPlane.GetAPIServer().Port)
	return port
}

// containerdConfig keeps everything of containerd below dir (but its shims' sockets, which
// containerd 1.6 puts in /run/containerd/s), runs pods with runc and the CNI bridge, and restricts
// containers' OOM score adjustments to no less than its own: lowering them needs a capability a
// sandboxed machine may not grant (runc then fails "can't get final child's PID from pipe").
const containerdConfig = `version = 2
root = "{{dir}}/containerd/root"
state = "{{dir}}/containerd/state"
[grpc]
  address = "{{sock}}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{{sandbox}}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{{cni}}"
    conf_dir = "{{dir}}/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{{dir}}/containerd/runc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{{dir}}/containerd/opt"
`

// cniConfig is the pods' network: a bridge with the host as gateway, addresses from podSubnet.
const cniConfig = `{"cniVersion": "1.0.0", "name": "localcluster", "plugins": [{"type": "bridge",
"bridge": "{{bridge}}", "isGateway": true, "isDefaultGateway": true, "ipMasq": false, "hairpinMode": true,
"ipam": {"type": "host-local", "ranges": [[{"subnet": "{{subnet}}", "gateway": "{{gateway}}"}]],
"dataDir": "{{dir}}/cni/ipam"}}]}
`

func (c *Cluster) startContainerd(ctx context.Context, dir, sock string, rn RealNode) error {
	fill := strings.NewReplacer("{{dir}}", dir, "{{sock}}", sock, "{{sandbox}}", rn.SandboxImage,
		"{{cni}}", cniBinDir(), "{{bridge}}", bridgeName, "{{subnet}}", podSubnet, "{{gateway}}", gatewayIP)
	config := filepath.Join(dir, "containerd.toml")
	if err := os.WriteFile(config, []byte(fill.Replace(containerdConfig)), 0o600); err != nil {
		return err
	}
	cni := filepath.Join(dir, "cni", "net.d", "10-localcluster.conflist")
	if err := os.WriteFile(cni, []byte(fill.Replace(cniConfig)), 0o600); err != nil {
		return err
	}
	containerd, err := exec.LookPath("containerd")
	if err != nil {
		return err
	}
	p, err := c.StartProcess("containerd-"+rn.Name, containerd, []string{"--config", config}, nil, nil)
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var out []byte
	if err := poll(waitCtx, func() bool {
		out, err = exec.CommandContext(waitCtx, "ctr", "--address", sock, "version").CombinedOutput()
		return err == nil
	}); err != nil {
		return fmt.Errorf("containerd did not start (log %s): %s", p.LogPath, out)
	}
	p.Supervise()
	for _, image := range rn.Images {
		out, err := exec.CommandContext(ctx, "ctr", "--address", sock, "--namespace", "k8s.io",
			"images", "import", image).CombinedOutput()
		if err != nil {
			return fmt.Errorf("importing %s into the real node's containerd: %w: %s", image, err, out)
		}
	}
	return nil
}

// kubeletConfig runs pods in cgroupRoot with the cgroupfs driver (no systemd here), on cgroup v1
// too (failCgroupV1: false), serves on the node's address only, lets the API server in without
// credentials (it reaches the kubelet for logs and exec), keeps every image (they cannot be pulled
// again: nothing is in a registry) and evicts nothing for a disk that a developer's machine fills.
const kubeletConfig = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: {{cgroupRoot}}
address: {{gateway}}
port: {{port}}
healthzBindAddress: 127.0.0.1
healthzPort: {{healthzPort}}
readOnlyPort: 0
authentication:
  anonymous:
    enabled: true
  webhook:
    enabled: false
authorization:
  mode: AlwaysAllow
containerRuntimeEndpoint: unix://{{sock}}
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  imagefs.available: "1%"
  nodefs.inodesFree: "1%"
resolvConf: ""
podLogsDir: {{dir}}/pod-logs
volumePluginDir: {{dir}}/kubelet-plugins
syncFrequency: 10s
makeIPTablesUtilChains: false
`

func (c *Cluster) startKubelet(ctx context.Context, binDir, dir, sock string, rn RealNode) error {
	ports, err := FreePorts(2)
	if err != nil {
		return err
	}
	port, healthzPort := ports[0], ports[1]
	for _, ctrl := range cgroupControllers() {
		if err := os.MkdirAll(filepath.Join("/sys/fs/cgroup", ctrl, cgroupRoot), 0o755); err != nil {
			return fmt.Errorf("making the real node's cgroup: %w", err)
		}
	}
	fill := strings.NewReplacer("{{cgroupRoot}}", cgroupRoot, "{{gateway}}", gatewayIP, "{{port}}", strconv.Itoa(port),
		"{{healthzPort}}", strconv.Itoa(healthzPort), "{{sock}}", sock, "{{dir}}", dir)
	config := filepath.Join(dir, "kubelet.yaml")
	if err := os.WriteFile(config, []byte(fill.Replace(kubeletConfig)), 0o600); err != nil {
		return err
	}
	user, err := c.env.AddUser(envtest.User{Name: "system:node:" + rn.Name,
		Groups: []string{"system:nodes", "system:masters"}}, nil)
	if err != nil {
		return err
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return err
	}
	kubeconfigPath := filepath.Join(dir, "kubelet.kubeconfig")
	if err := os.WriteFile(kubeconfigPath, kubeconfig, 0o600); err != nil {
		return err
	}
	labels := []string{RealNodeLabel + "=true"}
	for k, v := range rn.Labels {
		labels = append(labels, k+"="+v)
	}
	slices.Sort(labels)
	p, err := c.StartProcess("kubelet-"+rn.Name, filepath.Join(binDir, "kubelet"), []string{
		"--config=" + config,
		"--kubeconfig=" + kubeconfigPath,
		"--root-dir=" + filepath.Join(dir, "kubelet"),
		"--cert-dir=" + filepath.Join(dir, "kubelet-pki"),
		"--hostname-override=" + rn.Name,
		"--node-ip=" + gatewayIP,
		"--node-labels=" + strings.Join(labels, ","),
	}, nil, nil)
	if err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := WaitForReady(waitCtx, fmt.Sprintf("http://127.0.0.1:%d/healthz", healthzPort)); err != nil {
		return fmt.Errorf("the kubelet did not become healthy (log %s): %w", p.LogPath, err)
	}
	p.Supervise()
	return nil
}

// cgroupControllers are the cgroup v1 hierarchies mounted under /sys/fs/cgroup (none on a
// cgroup v2 only machine, where the kubelet makes its own cgroups).
func cgroupControllers() []string {
	var ctrls []string
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join("/sys/fs/cgroup", e.Name(), "cgroup.procs")); err == nil &&
			e.Name() != "unified" {
			ctrls = append(ctrls, e.Name())
		}
	}
	return ctrls
}

// setUpRealNodeNetwork makes the pods' bridge, with the host's address on it, and the route for
// pods from the `kubernetes` Service's address to the API server's port, as kube-proxy would.
func setUpRealNodeNetwork(apiServerPort int) error {
	// Whatever is left has been reported by the clean-up that came with the lock.
	_ = tearDownRealNodeNetwork()
	steps := [][]string{
		ipLink("add", bridgeName, "type", "bridge"),
		{"ip", "addr", "add", gatewayIP + "/24", "dev", bridgeName},
		ipLink("set", bridgeName, "up"),
		natTable("-N", natChain),
		natTable("-A", natChain, "-i", bridgeName, "-s", podSubnet, "-d", apiServiceIP, "-p", "tcp", "--dport", "443",
			"-j", "DNAT", "--to-destination", gatewayIP+":"+strconv.Itoa(apiServerPort)),
		natTable("-I", "PREROUTING", "-j", natChain),
	}
	for _, step := range steps {
		if err := run(step); err != nil {
			return fmt.Errorf("setting up the real node's network: %w", err)
		}
	}
	return nil
}

// run runs the command cmd (its name, then its arguments); its error quotes the command and its
// output.
func run(cmd []string) error {
	if out, err := exec.Command(cmd[0], cmd[1:]...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(cmd, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// ipLink is the command `ip link args...`.
func ipLink(args ...string) []string { return append([]string{"ip", "link"}, args...) }

// natTable is the command `iptables -t nat args...`.
func natTable(args ...string) []string { return append([]string{"iptables", "-t", "nat"}, args...) }

// tearDownRealNodeNetwork removes what setUpRealNodeNetwork made, as far as it exists, and fails
// when some of it remains.
func tearDownRealNodeNetwork() error {
	for range 10 {
		if run(natTable("-D", "PREROUTING", "-j", natChain)) != nil {
			break
		}
	}
	for _, step := range [][]string{natTable("-F", natChain), natTable("-X", natChain), ipLink("del", bridgeName)} {
		_ = run(step)
	}
	var left []string
	if run(ipLink("show", bridgeName)) == nil {
		left = append(left, "the bridge "+bridgeName)
	}
	if run(natTable("-S", natChain)) == nil {
		left = append(left, "the iptables chain "+natChain)
	}
	if len(left) > 0 {
		return fmt.Errorf("could not remove %s", strings.Join(left, " and "))
	}
	return nil
}

// realNodeLockPath is the lock of the right to run this machine's real node (there can be one:
// it uses machine-wide cgroups, a bridge, a route and a path), and the record of what the holder's
// real node changed on this machine, for whoever takes it next to clean up after a crash.
const realNodeLockPath = "/run/tserver-localcluster-real-node.lock"

// realNodeFree says whether another process runs a real node, without changing its record.
func realNodeFree() error {
	if err := lockedElsewhere(realNodeLockPath); err != nil {
		var rec realNodeRecord
		data, _ := os.ReadFile(realNodeLockPath)
		_ = json.Unmarshal(data, &rec)
		return fmt.Errorf("another local cluster runs a real node on this machine (pid %d, %s): %w",
			rec.PID, rec.StateDir, err)
	}
	if pid := otherKubelet(); pid != 0 {
		return fmt.Errorf("a kubelet already runs on this machine (pid %d): a real node would take over its "+
			"device-plugin directory, %s", pid, devicePluginDir)
	}
	return nil
}

// lockedElsewhere fails when another open file holds the lock of path (lockFile's); a missing
// file is no lock.
func lockedElsewhere(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return err
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}

// devicePluginDir is where every kubelet serves device plugins, whatever its --root-dir.
const devicePluginDir = "/var/lib/kubelet/device-plugins"

// shimSocketDir is where containerd 1.6 puts its shims' sockets, whatever its configuration.
const shimSocketDir = "/run/containerd/s"

// machineDirs are the directories outside the state directory that the real node writes into:
// containerd's shims' sockets, the CNI plugins' cache, the kubelet's links to its containers'
// logs and its device plugins.
var machineDirs = []string{shimSocketDir, "/var/lib/cni/results", "/var/log/containers", devicePluginDir}

// otherKubelet is the pid of a kubelet running on this machine, or 0.
func otherKubelet() int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe")); err == nil &&
			filepath.Base(strings.TrimSuffix(exe, " (deleted)")) == "kubelet" {
			return pid
		}
	}
	return 0
}

// realNodeRecord is what a real node changed on this machine, kept in realNodeLockPath's file.
type realNodeRecord struct {
	PID      int    `json:"pid"`
	StateDir string `json:"stateDir,omitempty"`
	// HostRoot is the mount mountHostRoot made at ProductionHostRoot: its mount ID and its root
	// in its filesystem, as /proc/self/mountinfo says.
	HostRoot *mount `json:"hostRoot,omitempty"`
	// Sysctls are the kernel settings before the kubelet and the bridge plugin changed them.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	// Made are directories made outside the state directory (ProductionHostRoot, the kubelet's
	// device-plugin directory), removed again when empty.
	Made []string `json:"made,omitempty"`
}

// realNodeLock is the right to run the real node, held by the process that runs it.
type realNodeLock struct {
	f   *os.File
	rec realNodeRecord
}

// kubeletSysctls are the kernel settings the kubelet sets at start (unless told to protect kernel
// defaults, when it refuses to run where they differ), and the forwarding the bridge plugin turns
// on, with the values they set; clean puts back a setting still at that value.
var kubeletSysctls = map[string]string{"vm.overcommit_memory": "1", "vm.panic_on_oom": "0", "kernel.panic": "10",
	"kernel.panic_on_oops": "1", "kernel.keys.root_maxkeys": "1000000", "kernel.keys.root_maxbytes": "25000000",
	"net.ipv4.ip_forward": "1"}

// lockRealNode takes realNodeLockPath for the cluster of stateDir, or says that another process
// holds it. It first cleans up what the previous holder's real node left, if it died; its record
// stays until that succeeds.
func lockRealNode(stateDir string) (*realNodeLock, error) {
	f, previous, err := lockFile(realNodeLockPath, "another local cluster runs a real node on this machine")
	if err != nil {
		return nil, err
	}
	var left realNodeRecord
	if len(bytes.TrimSpace(previous)) > 0 {
		if err := json.Unmarshal(previous, &left); err != nil {
			return nil, errors.Join(fmt.Errorf("reading %s (what a real node changed on this machine; remove it "+
				"once nothing of a real node is left): %w", realNodeLockPath, err), f.Close())
		}
	}
	if err := left.clean(stateDir); err != nil {
		return nil, errors.Join(fmt.Errorf("cleaning up after a real node that died: %w", err), f.Close())
	}
	l := &realNodeLock{f: f, rec: realNodeRecord{PID: os.Getpid(), StateDir: stateDir, Sysctls: map[string]string{}}}
	for key := range kubeletSysctls {
		if v, err := os.ReadFile(sysctlPath(key)); err == nil {
			l.rec.Sysctls[key] = strings.TrimSpace(string(v))
		}
	}
	if err := l.record(); err != nil {
		return nil, errors.Join(err, f.Close())
	}
	return l, nil
}

// record writes l.rec into the lock file: the whole of it, then cut to its length, so that a
// crash in between leaves the longer of the two readable.
func (l *realNodeLock) record() error {
	data, err := json.Marshal(l.rec)
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if _, err := l.f.WriteAt(data, 0); err != nil {
		return err
	}
	return l.f.Truncate(int64(len(data)))
}

// release cleans up after the real node, once its kubelet and containerd have stopped, and lets
// another cluster run one; what it could not clean stays recorded for the next holder.
func (l *realNodeLock) release() error {
	err := l.rec.clean(l.rec.StateDir)
	if err == nil {
		err = l.f.Truncate(0)
	}
	return errors.Join(err, l.f.Close())
}

// clean removes what a real node leaves on this machine once its kubelet and containerd have
// stopped (or died): containerd's shims, the containers in cgroupRoot, the mounts below its state
// directory's nodes and its host root at ProductionHostRoot, its network, the kubelet's files
// outside the state directory; and puts back the kernel settings its kubelet changed. What is in
// a state directory that another running cluster than ownStateDir's holds is that cluster's, and
// left alone.
func (r *realNodeRecord) clean(ownStateDir string) error {
	nodes := ""
	if r.StateDir != "" && (r.StateDir == ownStateDir || !stateDirBusy(r.StateDir)) {
		nodes = filepath.Join(r.StateDir, "nodes")
		killStale([]string{nodes})
	}
	errs := []error{killCgroup(), tearDownRealNodeNetwork(), unmountHostRoot(r.HostRoot)}
	if nodes != "" {
		errs = append(errs, unmountBelow(nodes), removeOwnLinks("/var/log/containers", nodes))
	}
	// The CNI plugins' cache of the pods' addresses: the bridge's, by the network's name; the
	// loopback's too where the directory was made for the real node.
	cache, _ := filepath.Glob("/var/lib/cni/results/localcluster-*")
	if slices.Contains(r.Made, "/var/lib/cni/results") {
		loopback, _ := filepath.Glob("/var/lib/cni/results/cni-loopback-*")
		cache = append(cache, loopback...)
	}
	for _, f := range cache {
		errs = append(errs, os.Remove(f))
	}
	// In directories made for the real node (none other than it writes there: RealNodeSupport
	// refuses where another kubelet runs), the kubelet's and the shims' sockets are its own.
	if slices.Contains(r.Made, devicePluginDir) {
		for _, f := range []string{"kubelet.sock", "kubelet_internal_checkpoint"} {
			if err := os.Remove(filepath.Join(devicePluginDir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	if slices.Contains(r.Made, shimSocketDir) {
		entries, _ := os.ReadDir(shimSocketDir)
		for _, e := range entries {
			if e.Type()&os.ModeSocket != 0 {
				errs = append(errs, os.Remove(filepath.Join(shimSocketDir, e.Name())))
			}
		}
	}
	for _, dir := range slices.Backward(r.Made) {
		// Only when empty: nothing of anyone else's goes.
		if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			errs = append(errs, err)
		}
	}
	for key, before := range r.Sysctls {
		cur, err := os.ReadFile(sysctlPath(key))
		// A setting someone changed since is theirs.
		if err == nil && strings.TrimSpace(string(cur)) == kubeletSysctls[key] && before != kubeletSysctls[key] {
			errs = append(errs, os.WriteFile(sysctlPath(key), []byte(before), 0o644)) //nolint:gosec // a sysctl
		}
	}
	return errors.Join(errs...)
}

// stateDirBusy says whether a running cluster holds the state directory dir.
func stateDirBusy(dir string) bool { return lockedElsewhere(filepath.Join(dir, ".lock")) != nil }

// removeOwnLinks removes the symbolic links in dir that lead below target: the kubelet's links to
// its containers' logs, in a directory fixed whatever its --root-dir.
func removeOwnLinks(dir, target string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil //nolint:nilerr // no such directory: nothing to remove
	}
	var errs []error
	for _, e := range entries {
		link := filepath.Join(dir, e.Name())
		if dest, err := os.Readlink(link); err == nil && strings.HasPrefix(dest, target+"/") {
			errs = append(errs, os.Remove(link))
		}
	}
	return errors.Join(errs...)
}

// makeDirs makes dir and its missing parents, and records those it made.
func (l *realNodeLock) makeDirs(dir string) error {
	var missing []string
	for d := dir; d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Reverse(missing)
	l.rec.Made = append(l.rec.Made, missing...)
	if err := l.record(); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o755)
}

// sysctlPath is the file of a kernel setting.
func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

// killCgroup kills every process in cgroupRoot (the real node's containers) until none is left,
// and removes its cgroups; it fails when it cannot.
func killCgroup() error {
	var errs []error
	for _, ctrl := range cgroupControllers() {
		root := filepath.Join("/sys/fs/cgroup", ctrl, cgroupRoot)
		var left []string
		for range 100 {
			var dirs []string
			_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, path)
				}
				return nil
			})
			if len(dirs) == 0 {
				break
			}
			left = nil
			for _, dir := range slices.Backward(dirs) {
				procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
				for f := range strings.FieldsSeq(string(procs)) {
					// 0 stands for a process of another PID namespace: never kill(0), our own group.
					if pid, err := strconv.Atoi(f); err == nil && pid > 0 && pid != os.Getpid() {
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				// Deepest first; a cgroup goes once its processes have.
				if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
					left = append(left, dir)
				}
			}
			if len(left) == 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if len(left) > 0 {
			errs = append(errs, fmt.Errorf("could not empty the real node's cgroups %s", strings.Join(left, ", ")))
		}
	}
	return errors.Join(errs...)
}

// unmountBelow unmounts every mount at or below dir, deepest first, and fails when one remains.
func unmountBelow(dir string) error {
	dir = filepath.Clean(dir)
	var left []string
	for range 3 {
		mounts, err := mountsBelow(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return nil
		}
		for _, m := range slices.Backward(mounts) {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
		left = mounts
	}
	if mounts, err := mountsBelow(dir); err != nil || len(mounts) > 0 {
		return fmt.Errorf("could not unmount %s: %w", strings.Join(left, ", "), err)
	}
	return nil
}

// mountsBelow are the mount points at or below dir, in the order they were mounted.
func mountsBelow(dir string) ([]string, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var points []string
	for _, m := range mounts {
		if m.point == dir || strings.HasPrefix(m.point, dir+"/") {
			points = append(points, m.point)
		}
	}
	return points, nil
}

// mount is a line of /proc/self/mountinfo: its ID, where it is mounted and what of its filesystem.
type mount struct {
	ID    int    `json:"id"`
	Root  string `json:"root"`
	point string
}

// sameRoot says whether m mounts root, or root once deleted.
func (m mount) sameRoot(root string) bool {
	return m.Root == root || m.Root == root+"//deleted"
}

// readMounts are this process's mounts, in the order they were mounted.
func readMounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	var mounts []mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		id, _ := strconv.Atoi(fields[0])
		mounts = append(mounts, mount{ID: id, Root: unescapeMountinfo(fields[3]), point: unescapeMountinfo(fields[4])})
	}
	// A list cut short would look clean.
	return mounts, sc.Err()
}

// unescapeMountinfo undoes mountinfo's octal escapes of spaces, tabs, newlines and backslashes.
func unescapeMountinfo(field string) string {
	if s, err := strconv.Unquote(`"` + strings.ReplaceAll(field, `"`, `\"`) + `"`); err == nil {
		return s
	}
	return field
}
