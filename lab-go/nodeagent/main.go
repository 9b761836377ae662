// Command nodeagent is the lab's node agent for the real control plane: one per lab node. It registers
// the Node with the real kube-apiserver and serves the kubelet API (exec, logs, port-forward) with the
// virtual-kubelet library; pods themselves run in the lab's Python kubelet (per-pod network namespace,
// containers as processes), reached over a unix socket with a line-delimited JSON protocol (see
// netconform/lab/control/nodebridge.py):
//
//	request  {"op": "create"|"delete"|"get"|"list"|"exec"|"logs"|"netns"|"alive"|"watch", ...}
//	response {"ok": true, ...} or {"ok": false, "code": 404, "message": "..."}
//
// "watch" answers with one pod (JSON) per line for every status change of this node's pods, until the
// connection closes. Every dial and request has a deadline.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/virtual-kubelet/virtual-kubelet/errdefs"
	"github.com/virtual-kubelet/virtual-kubelet/log"
	"github.com/virtual-kubelet/virtual-kubelet/node"
	"github.com/virtual-kubelet/virtual-kubelet/node/api"
	"github.com/virtual-kubelet/virtual-kubelet/node/nodeutil"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	statsv1alpha1 "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
	utilexec "k8s.io/utils/exec"
)

const requestTimeout = 15 * time.Second

// bridge is the client side of the unix-socket protocol to the lab's Python kubelet.
type bridge struct {
	sock string
	node string
}

type bridgeError struct {
	Code    int
	Message string
}

func (e *bridgeError) Error() string { return e.Message }

func (b *bridge) dial(ctx context.Context, req map[string]any) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "unix", b.sock)
	if err != nil {
		return nil, nil, err
	}
	req["node"] = b.node
	data, err := json.Marshal(req)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	if _, err := conn.Write(append(data, '\n')); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, bufio.NewReaderSize(conn, 1<<20), nil
}

// answerError is the error of a bridge answer line ({"ok": false, "code", "message"}), nil when ok:
// 404 and 400 become virtual-kubelet's NotFound and InvalidInput, so the API server gets those codes.
func answerError(line []byte) error {
	var head struct {
		OK      bool   `json:"ok"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return err
	}
	if head.OK {
		return nil
	}
	be := &bridgeError{Code: head.Code, Message: head.Message}
	switch head.Code {
	case 404:
		return errdefs.AsNotFound(be)
	case 400:
		return errdefs.AsInvalidInput(be)
	}
	return be
}

// call sends one request and decodes the one-line answer into out (may be nil).
func (b *bridge) call(ctx context.Context, req map[string]any, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	conn, rd, err := b.dial(ctx, req)
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	line, err := rd.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("bridge %s: %w", req["op"], err)
	}
	if err := answerError(line); err != nil {
		return err
	}
	if out != nil {
		return json.Unmarshal(line, out)
	}
	return nil
}

// provider implements nodeutil.Provider and node.PodNotifier over the bridge, and sends the node's
// Ready condition to the node controller: true once the pod controller runs, then whatever the lab
// kubelet's status stream says (a fault such as cni-not-ready turns it false with its reason).
type provider struct {
	b     *bridge
	nodes *node.NaiveNodeProviderV2
	mu    sync.Mutex
	spec  *corev1.Node // the node as this agent reports it; status updates start from a copy
	ready *readiness   // the lab kubelet's last word on Ready (nil: none yet)
	up    bool         // the pod controller runs
}

// readiness is the lab kubelet's Ready condition for this node: {"ready": bool, "reason", "message"}.
type readiness struct {
	Ready   bool   `json:"ready"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// report sends the node's status with the current Ready condition to the node controller.
func (p *provider) report(ctx context.Context) {
	p.mu.Lock()
	r := readiness{Ready: false, Reason: "KubeletNotReady", Message: "starting"}
	if p.up {
		r = readiness{Ready: true, Reason: "KubeletReady", Message: "kubelet is posting ready status"}
	}
	if p.up && p.ready != nil {
		r = *p.ready
	}
	now := metav1.Now()
	for i := range p.spec.Status.Conditions {
		c := &p.spec.Status.Conditions[i]
		if c.Type != corev1.NodeReady {
			continue
		}
		status := corev1.ConditionFalse
		if r.Ready {
			status = corev1.ConditionTrue
		}
		if c.Status != status {
			c.LastTransitionTime = now
		}
		c.Status, c.Reason, c.Message, c.LastHeartbeatTime = status, r.Reason, r.Message, now
	}
	if p.up {
		p.spec.Status.Phase = corev1.NodeRunning
	}
	copied := p.spec.DeepCopy()
	p.mu.Unlock()
	if err := p.nodes.UpdateStatus(ctx, copied); err != nil && ctx.Err() == nil {
		log.G(ctx).WithError(err).Warn("node status update")
	}
}

func podKey(pod *corev1.Pod) map[string]any {
	return map[string]any{"namespace": pod.Namespace, "name": pod.Name, "uid": string(pod.UID)}
}

func (p *provider) CreatePod(ctx context.Context, pod *corev1.Pod) error {
	return p.b.call(ctx, map[string]any{"op": "create", "pod": pod}, nil)
}

func (p *provider) UpdatePod(ctx context.Context, pod *corev1.Pod) error {
	return p.b.call(ctx, map[string]any{"op": "update", "pod": pod}, nil)
}

func (p *provider) DeletePod(ctx context.Context, pod *corev1.Pod) error {
	req := podKey(pod)
	req["op"] = "delete"
	if pod.DeletionGracePeriodSeconds != nil {
		req["grace"] = *pod.DeletionGracePeriodSeconds
	}
	return p.b.call(ctx, req, nil)
}

func (p *provider) GetPod(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	var out struct {
		Pod *corev1.Pod `json:"pod"`
	}
	err := p.b.call(ctx, map[string]any{"op": "get", "namespace": namespace, "name": name}, &out)
	if err != nil {
		return nil, err
	}
	if out.Pod == nil {
		return nil, errdefs.NotFoundf("pod %s/%s not found", namespace, name)
	}
	return out.Pod, nil
}

func (p *provider) GetPodStatus(ctx context.Context, namespace, name string) (*corev1.PodStatus, error) {
	pod, err := p.GetPod(ctx, namespace, name)
	if err != nil {
		return nil, err
	}
	return &pod.Status, nil
}

func (p *provider) GetPods(ctx context.Context) ([]*corev1.Pod, error) {
	var out struct {
		Pods []*corev1.Pod `json:"pods"`
	}
	if err := p.b.call(ctx, map[string]any{"op": "list"}, &out); err != nil {
		return nil, err
	}
	return out.Pods, nil
}

// NotifyPods follows the bridge's status stream; reconnects (after 1 s) until ctx ends.
func (p *provider) NotifyPods(ctx context.Context, cb func(*corev1.Pod)) {
	go func() {
		for ctx.Err() == nil {
			if err := p.follow(ctx, cb); err != nil && ctx.Err() == nil {
				log.G(ctx).WithError(err).Warn("status stream from the lab kubelet ended; reconnecting")
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
}

func (p *provider) follow(ctx context.Context, cb func(*corev1.Pod)) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, rd, err := p.b.dial(dctx, map[string]any{"op": "watch"})
	cancel()
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	for {
		// the bridge sends a heartbeat line at least every 5 s
		_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := rd.ReadBytes('\n')
		if err != nil {
			return err
		}
		var msg struct {
			Pod  *corev1.Pod `json:"pod"`
			Node *readiness  `json:"node"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return err
		}
		if msg.Pod != nil {
			cb(msg.Pod)
		}
		if msg.Node != nil {
			p.mu.Lock()
			p.ready = msg.Node
			p.mu.Unlock()
			go p.report(ctx)
		}
	}
}

func (p *provider) RunInContainer(ctx context.Context, namespace, name, container string, cmd []string,
	attach api.AttachIO) error {
	var out struct {
		Argv []string          `json:"argv"`
		Env  map[string]string `json:"env"`
	}
	req := map[string]any{"op": "exec", "namespace": namespace, "name": name, "container": container, "command": cmd}
	if err := p.b.call(ctx, req, &out); err != nil {
		return err
	}
	if len(out.Argv) == 0 {
		return errors.New("the lab kubelet returned no command")
	}
	c := exec.CommandContext(ctx, out.Argv[0], out.Argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 2 * time.Second
	for k, v := range out.Env {
		c.Env = append(c.Env, k+"="+v)
	}
	if in := attach.Stdin(); in != nil {
		// a pipe of our own: Wait closes it when the command exits, so a client that keeps its stdin
		// open (the suite writes one line and waits for the answer) does not hold the session open
		pipe, err := c.StdinPipe()
		if err != nil {
			return err
		}
		go func() {
			_, _ = io.Copy(pipe, in)
			_ = pipe.Close()
		}()
	}
	if o := attach.Stdout(); o != nil {
		c.Stdout = o
		defer o.Close()
	}
	if e := attach.Stderr(); e != nil {
		c.Stderr = e
		defer e.Close()
	} else if attach.TTY() {
		c.Stderr = c.Stdout
	}
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return utilexec.CodeExitError{Err: err, Code: ee.ExitCode()}
	}
	return err
}

// AttachToContainer joins the container's stdin and output through the bridge's raw "attach" stream
// (kubectl attach, kubectl debug -i/-it): stdin goes to the container's pipe or terminal, its output
// from now on comes back until it exits. Terminal resizes are read and dropped (the lab's pty keeps its size).
func (p *provider) AttachToContainer(ctx context.Context, namespace, name, container string, attach api.AttachIO) error {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, rd, err := p.b.dial(dctx, map[string]any{"op": "attach", "namespace": namespace, "name": name, "container": container})
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	_ = conn.SetReadDeadline(time.Now().Add(requestTimeout))
	line, err := rd.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("bridge attach: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	if err := answerError(line); err != nil {
		return err
	}
	if resize := attach.Resize(); resize != nil {
		go func() {
			for range resize {
			}
		}()
	}
	if in := attach.Stdin(); in != nil {
		go func() { // frames: 4-byte big-endian length, then the bytes; an empty frame ends stdin
			buf := make([]byte, 32<<10)
			for {
				n, err := in.Read(buf[4:])
				if n > 0 {
					binary.BigEndian.PutUint32(buf[:4], uint32(n))
					if _, werr := conn.Write(buf[:4+n]); werr != nil {
						return
					}
				}
				if err != nil {
					_, _ = conn.Write([]byte{0, 0, 0, 0})
					return
				}
			}
		}()
	}
	if out := attach.Stdout(); out != nil {
		_, err = io.Copy(out, rd)
	} else {
		_, err = io.Copy(io.Discard, rd)
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

func (p *provider) logPath(ctx context.Context, namespace, name, container string, previous bool) (string, error) {
	var out struct {
		Path string `json:"path"`
	}
	req := map[string]any{"op": "logs", "namespace": namespace, "name": name, "container": container, "previous": previous}
	if err := p.b.call(ctx, req, &out); err != nil {
		return "", err
	}
	return out.Path, nil
}

func (p *provider) alive(ctx context.Context, namespace, name, container string) bool {
	var out struct {
		Alive bool `json:"alive"`
	}
	req := map[string]any{"op": "alive", "namespace": namespace, "name": name, "container": container}
	if err := p.b.call(ctx, req, &out); err != nil {
		return false
	}
	return out.Alive
}

func tailLines(data []byte, n int) []byte {
	if n < 0 {
		return data
	}
	if n == 0 {
		return nil
	}
	end := len(data)
	if end > 0 && data[end-1] == '\n' {
		end--
	}
	count := 0
	for i := end - 1; i >= 0; i-- {
		if data[i] == '\n' {
			count++
			if count == n {
				return data[i+1:]
			}
		}
	}
	return data
}

func (p *provider) GetContainerLogs(ctx context.Context, namespace, name, container string,
	opts api.ContainerLogOpts) (io.ReadCloser, error) {
	path, err := p.logPath(ctx, namespace, name, container, opts.Previous)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	offset := int64(len(data))
	if opts.Tail > 0 {
		data = tailLines(data, opts.Tail)
	}
	if opts.LimitBytes > 0 && len(data) > opts.LimitBytes {
		data = data[:opts.LimitBytes]
	}
	if !opts.Follow {
		return io.NopCloser(strings.NewReader(string(data))), nil
	}
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		if _, err := pw.Write(data); err != nil {
			return
		}
		for ctx.Err() == nil {
			f, err := os.Open(path)
			if err == nil {
				if _, err = f.Seek(offset, io.SeekStart); err == nil {
					n, _ := io.Copy(pw, f)
					offset += n
				}
				f.Close()
			}
			if !p.alive(ctx, namespace, name, container) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond): // polling the log file's growth while following
			}
		}
	}()
	return pr, nil
}

func (p *provider) GetStatsSummary(ctx context.Context) (*statsv1alpha1.Summary, error) {
	return &statsv1alpha1.Summary{Node: statsv1alpha1.NodeStats{NodeName: p.b.node}}, nil
}

func (p *provider) GetMetricsResource(ctx context.Context) ([]*dto.MetricFamily, error) {
	return nil, nil
}

// dialInNetns connects to 127.0.0.1:port inside the network namespace at nsPath (the pod's), from a
// locked OS thread that switches back before it is released.
func dialInNetns(nsPath string, port int32) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer self.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		c, derr := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			// this thread stays in the pod's namespace: never hand it back to the scheduler
			ch <- result{nil, fmt.Errorf("restoring the network namespace: %w", err)}
			if c != nil {
				c.Close()
			}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{c, derr}
	}()
	r := <-ch
	return r.c, r.err
}

func (p *provider) PortForward(ctx context.Context, namespace, name string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close()
	var out struct {
		Netns string `json:"netns"`
	}
	if err := p.b.call(ctx, map[string]any{"op": "netns", "namespace": namespace, "name": name}, &out); err != nil {
		return err
	}
	conn, err := dialInNetns(out.Netns, port)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

func main() {
	var (
		nodeName   = flag.String("node", "", "node name")
		kubeconfig = flag.String("kubeconfig", "", "kubeconfig with this node's credentials")
		listen     = flag.String("listen", "127.0.0.1:10250", "kubelet API address")
		certFile   = flag.String("tls-cert", "", "kubelet serving certificate")
		keyFile    = flag.String("tls-key", "", "kubelet serving key")
		clientCA   = flag.String("client-ca", "", "CA of the API server's kubelet client certificate")
		sock       = flag.String("bridge", "", "unix socket of the lab kubelet")
		internalIP = flag.String("internal-ip", "", "the node's InternalIP")
		hostAddr   = flag.String("hostname-address", "localhost", "the Hostname address (the API server dials it)")
		podCIDR    = flag.String("pod-cidr", "", "the node's pod CIDR")
		taints     = flag.String("taints", "", "key=value:Effect or key:Effect, comma separated")
		version    = flag.String("kubelet-version", "v1.34.4", "reported kubelet version")
	)
	flag.Parse()
	if *nodeName == "" || *sock == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "nodeagent: -node, -kubeconfig and -bridge are required")
		os.Exit(2)
	}
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer cancel()

	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeagent:", err)
		os.Exit(1)
	}
	cfg.Timeout = 30 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeagent:", err)
		os.Exit(1)
	}
	_, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeagent:", err)
		os.Exit(2)
	}
	var port int32
	fmt.Sscanf(portStr, "%d", &port)

	var nodeTaints []corev1.Taint
	for _, t := range strings.Split(*taints, ",") {
		if t == "" {
			continue
		}
		kv, effect, _ := strings.Cut(t, ":")
		k, v, _ := strings.Cut(kv, "=")
		nodeTaints = append(nodeTaints, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)})
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	b := &bridge{sock: *sock, node: *nodeName}
	var prov *provider
	mux := http.NewServeMux()
	n, err := nodeutil.NewNode(*nodeName,
		func(pc nodeutil.ProviderConfig) (nodeutil.Provider, node.NodeProvider, error) {
			pc.Node.Labels["kubernetes.io/os"] = "linux"
			pc.Node.Labels["kubernetes.io/arch"] = runtime.GOARCH
			pc.Node.Labels["beta.kubernetes.io/os"] = "linux"
			pc.Node.Labels["beta.kubernetes.io/arch"] = runtime.GOARCH
			delete(pc.Node.Labels, "kubernetes.io/role") // NodeRestriction refuses it from a node
			if *podCIDR != "" {
				pc.Node.Spec.PodCIDR = *podCIDR
				pc.Node.Spec.PodCIDRs = []string{*podCIDR}
			}
			pc.Node.Spec.Taints = nodeTaints
			pc.Node.Status.Addresses = []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: *internalIP},
				{Type: corev1.NodeHostName, Address: *hostAddr},
			}
			pc.Node.Status.DaemonEndpoints = corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: port}}
			pc.Node.Status.Capacity = capacity
			pc.Node.Status.Allocatable = capacity
			pc.Node.Status.NodeInfo = corev1.NodeSystemInfo{
				KubeletVersion:          *version,
				OperatingSystem:         "linux",
				Architecture:            runtime.GOARCH,
				OSImage:                 "netconform lab (host filesystem)",
				ContainerRuntimeVersion: "lab://1.0",
			}
			now := metav1.Now()
			for i := range pc.Node.Status.Conditions {
				c := &pc.Node.Status.Conditions[i]
				c.LastHeartbeatTime, c.LastTransitionTime = now, now
				switch c.Type {
				case corev1.NodeReady:
					c.Status, c.Reason, c.Message = corev1.ConditionFalse, "KubeletNotReady", "starting"
				case corev1.NodeNetworkUnavailable:
					c.Status, c.Reason, c.Message = corev1.ConditionFalse, "RouteCreated", "the lab's overlay is up"
				default:
					c.Status, c.Reason, c.Message = corev1.ConditionFalse, "KubeletHasSufficient", "ok"
				}
			}
			prov = &provider{b: b, nodes: node.NewNaiveNodeProvider(), spec: pc.Node}
			return prov, prov.nodes, nil
		},
		nodeutil.WithClient(client),
		func(c *nodeutil.NodeConfig) error {
			c.HTTPListenAddr = *listen
			c.Handler = mux
			c.NumWorkers = 4
			// the lab kubelet resolves env (downward API incl. status.podIP, configMap and secret refs)
			// itself, once the pod's IP is known
			c.SkipDownwardAPIResolution = true
			c.StreamIdleTimeout = 4 * time.Hour
			c.StreamCreationTimeout = 30 * time.Second
			return nil
		},
		nodeutil.AttachProviderRoutes(mux),
		nodeutil.WithTLSConfig(nodeutil.WithKeyPairFromPath(*certFile, *keyFile), nodeutil.WithCAFromPath(*clientCA)),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "nodeagent:", err)
		os.Exit(1)
	}
	go func() {
		if err := n.WaitReady(ctx, 60*time.Second); err != nil {
			log.G(ctx).WithError(err).Error("node not ready")
			return
		}
		prov.mu.Lock()
		prov.up = true
		prov.mu.Unlock()
		prov.report(ctx)
		log.G(ctx).Infof("node %s ready, kubelet API on %s", *nodeName, *listen)
	}()
	if err := n.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "nodeagent:", err)
		os.Exit(1)
	}
}
