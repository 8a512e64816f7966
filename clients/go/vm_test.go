package vessel_test

// Containers in real VMs through the Go helpers. vesseld runs in a network
// namespace this test creates (`ip netns add`) and deletes, so its bridge,
// taps and VMs never touch the host's network; a docker-registry runs in
// the same namespace. Needs VESSEL_KERNEL and VESSEL_INITRD (go_test.sh sets
// them; without them these tests are skipped unless VESSEL_REQUIRE_VM is set).

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	vessel "github.com/vessel/vessel/clients/go"
	"github.com/vessel/vessel/clients/go/vesselpb"
)

const (
	testImage    = "busybox:test"
	registryPort = 5000
)

type vmEnv struct {
	netns  string
	dir    string
	unix   string
	tcp    string
	certs  string
	client *vessel.Client
	log    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	vmOnce     sync.Once
	vmShared   *vmEnv
	vmErr      error
	vmCleanups []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(vmCleanups) - 1; i >= 0; i-- {
		vmCleanups[i]()
	}
	os.Exit(code)
}

// vm returns the shared VM environment (one vesseld for every VM test).
func vm(t *testing.T) *vmEnv {
	t.Helper()
	if os.Getenv("VESSEL_KERNEL") == "" || os.Getenv("VESSEL_INITRD") == "" {
		if os.Getenv("VESSEL_REQUIRE_VM") != "" {
			t.Fatal("VESSEL_KERNEL and VESSEL_INITRD must be set")
		}
		t.Skip("VESSEL_KERNEL/VESSEL_INITRD not set")
	}
	vmOnce.Do(func() { vmShared, vmErr = startVMEnv() })
	if vmErr != nil {
		t.Fatal(vmErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("vesseld log:\n" + vmShared.log.String())
		}
	})
	return vmShared
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %v: %v: %s", name, args, err, out)
	}
	return nil
}

func startVMEnv() (*vmEnv, error) {
	dir, err := os.MkdirTemp("/tmp", "vsl-govm-")
	if err != nil {
		return nil, err
	}
	vmCleanups = append(vmCleanups, func() { os.RemoveAll(dir) })
	e := &vmEnv{netns: fmt.Sprintf("vsl-go%d", os.Getpid()), dir: dir, log: &syncBuffer{},
		unix: "unix://" + filepath.Join(dir, "v.sock"), certs: filepath.Join(dir, "certs")}
	if err := run("ip", "netns", "add", e.netns); err != nil {
		return nil, err
	}
	vmCleanups = append(vmCleanups, func() { run("ip", "netns", "del", e.netns) })
	if err := run("ip", "-n", e.netns, "link", "set", "lo", "up"); err != nil {
		return nil, err
	}
	if err := run("bash", os.Getenv("VESSEL_CERTS"), e.certs); err != nil {
		return nil, err
	}

	cmd := exec.Command("ip", "netns", "exec", e.netns, os.Getenv("VESSELD"),
		"--root", filepath.Join(dir, "root"), "--listen", e.unix, "--listen", "tcp://127.0.0.1:0",
		"--tls-cert", e.certs+"/server.pem", "--tls-key", e.certs+"/server.key",
		"--tls-client-ca", e.certs+"/ca.pem",
		"--kernel", os.Getenv("VESSEL_KERNEL"), "--initrd", os.Getenv("VESSEL_INITRD"))
	out, _ := cmd.StderrPipe()
	cmd.Stdout = e.log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	logDone := make(chan struct{})
	vmCleanups = append(vmCleanups, func() {
		cmd.Process.Signal(syscall.SIGTERM) // `ip netns exec` execs vesseld: same PID
		cmd.Wait()
		<-logDone
	})
	ready := make(chan struct{})
	go func() {
		defer close(logDone)
		re := regexp.MustCompile(`listening on (tcp://\S+)`)
		s := bufio.NewScanner(out)
		once := sync.Once{}
		for s.Scan() {
			line := s.Text()
			fmt.Fprintln(e.log, line)
			if m := re.FindStringSubmatch(line); m != nil {
				e.tcp = m[1]
			}
			if strings.Contains(line, " ready ") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		return nil, fmt.Errorf("vesseld did not become ready:\n%s", e.log)
	}

	// docker-registry in the namespace, on its loopback.
	regDir := filepath.Join(dir, "registry")
	os.MkdirAll(regDir, 0o755)
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"+
		"storage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%d\n",
		regDir, registryPort)
	if err := os.WriteFile(regDir+"/config.yml", []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	reg := exec.Command("ip", "netns", "exec", e.netns, "docker-registry", "serve",
		regDir+"/config.yml")
	reg.Stderr = e.log
	if err := reg.Start(); err != nil {
		return nil, err
	}
	vmCleanups = append(vmCleanups, func() { reg.Process.Kill(); reg.Wait() })
	probe := fmt.Sprintf("echo > /dev/tcp/127.0.0.1/%d", registryPort)
	for i := 0; ; i++ {
		if exec.Command("ip", "netns", "exec", e.netns, "bash", "-c", probe).Run() == nil {
			break
		}
		if i == 200 {
			return nil, fmt.Errorf("docker-registry did not start")
		}
		time.Sleep(100 * time.Millisecond)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	e.client, err = vessel.Dial(ctx, e.unix)
	if err != nil {
		return nil, err
	}
	vmCleanups = append(vmCleanups, func() { e.client.Close() })
	archive, err := busyboxArchive()
	if err != nil {
		return nil, err
	}
	if _, err := e.client.Load(ctx, bytes.NewReader(archive), testImage); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	return e, nil
}

// busyboxArchive builds an OCI archive of Debian's busybox-static with
// applet links (no network needed).
func busyboxArchive() ([]byte, error) {
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, err
	}
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	mtime := time.Unix(1700000000, 0)
	for _, d := range []string{"bin", "etc", "tmp"} {
		tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime})
	}
	tw.WriteHeader(&tar.Header{Name: "bin/busybox", Mode: 0o755, Size: int64(len(bb)), ModTime: mtime})
	tw.Write(bb)
	for _, a := range []string{"sh", "echo", "cat", "sleep", "hostname", "id", "true", "uname"} {
		tw.WriteHeader(&tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "busybox",
			Mode: 0o777, ModTime: mtime})
	}
	passwd := []byte("root:x:0:0:root:/root:/bin/sh\n")
	tw.WriteHeader(&tar.Header{Name: "etc/passwd", Mode: 0o644, Size: int64(len(passwd)), ModTime: mtime})
	tw.Write(passwd)
	tw.Close()
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(layer.Bytes())
	zw.Close()

	blobs := map[string][]byte{}
	add := func(b []byte) map[string]any {
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		blobs[d] = b
		return map[string]any{"digest": d, "size": len(b)}
	}
	diff := sha256.Sum256(layer.Bytes())
	config, _ := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH, "os": "linux",
		"config": map[string]any{"Cmd": []string{"echo", "hello from the Go test"},
			"Env": []string{"PATH=/bin"}},
		"rootfs": map[string]any{"type": "layers",
			"diff_ids": []string{"sha256:" + hex.EncodeToString(diff[:])}},
	})
	cd, ld := add(config), add(gz.Bytes())
	cd["mediaType"] = "application/vnd.oci.image.config.v1+json"
	ld["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip"
	manifest, _ := json.Marshal(map[string]any{"schemaVersion": 2,
		"mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cd,
		"layers": []any{ld}})
	md := add(manifest)
	md["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
	md["annotations"] = map[string]string{"org.opencontainers.image.ref.name": "test"}
	index, _ := json.Marshal(map[string]any{"schemaVersion": 2, "manifests": []any{md}})

	var out bytes.Buffer
	aw := tar.NewWriter(&out)
	file := func(name string, b []byte) {
		aw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: mtime})
		aw.Write(b)
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	file("index.json", index)
	for d, b := range blobs {
		file("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), b)
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func longCtx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestPushPull(t *testing.T) {
	e := vm(t)
	c, ctx := e.client, longCtx(t)
	dest := fmt.Sprintf("127.0.0.1:%d/go/busybox:1", registryPort)
	local, err := c.InspectImage(ctx, testImage)
	if err != nil {
		t.Fatal(err)
	}
	pushed, err := c.Push(ctx, testImage, vessel.WithDestination(dest))
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Digest != local.Target.Digest {
		t.Fatalf("pushed %s, local %s", pushed.Digest, local.Target.Digest)
	}
	var updates int
	var last *vesselpb.TransferProgress
	img, err := c.Pull(ctx, dest, vessel.WithProgress(func(p *vesselpb.TransferProgress) {
		updates++
		last = p
	}))
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != dest || img.Target.Digest != pushed.Digest {
		t.Fatalf("pulled %s %s", img.Name, img.Target.Digest)
	}
	if updates == 0 || last.BytesTotal == 0 || last.BytesDone != last.BytesTotal {
		t.Fatalf("progress: %d updates, last %v", updates, last)
	}
	imgs, err := c.ListImages(ctx, "reference=127.0.0.1:*")
	if err != nil || len(imgs) != 1 || imgs[0].Name != dest {
		t.Fatalf("list: %v %v", imgs, err)
	}
	if err := c.DeleteImage(ctx, dest, false); err != nil {
		t.Fatal(err)
	}
	_, err = c.Pull(ctx, fmt.Sprintf("127.0.0.1:%d/go/missing:1", registryPort))
	if status.Code(err) != codes.NotFound {
		t.Fatalf("pull of a missing image: want NotFound, got %v", err)
	}
}

func TestRunExecLogsEvents(t *testing.T) {
	e := vm(t)
	c, ctx := e.client, longCtx(t)
	ectx, stopEvents := context.WithCancel(ctx)
	defer stopEvents()
	events, errc := c.Events(ectx, vessel.EventFilter{ContainerID: "go-long"})

	// Run: output, exit code, stdin, env; the container is deleted after.
	res, err := c.Run(ctx, testImage, []string{"sh", "-c", "echo out $A; cat; echo err >&2; exit 3"},
		vessel.WithStdin(strings.NewReader("from stdin\n")), vessel.WithEnv("A=1"))
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 3 || string(res.Stdout) != "out 1\nfrom stdin\n" || string(res.Stderr) != "err\n" {
		t.Fatalf("run: %d %q %q", res.ExitCode, res.Stdout, res.Stderr)
	}
	if _, err := c.Inspect(ctx, res.ID); status.Code(err) != codes.NotFound {
		t.Fatalf("run left its container: %v", err)
	}

	// A long-running container: exec, logs, stats, stop, delete.
	if _, err := c.Create(ctx, testImage, []string{"sh", "-c", "echo started; sleep 600"},
		vessel.WithID("go-long"), vessel.WithLabels(map[string]string{"suite": "go"})); err != nil {
		t.Fatal(err)
	}
	defer c.Delete(context.Background(), "go-long", true)
	ct, err := c.Start(ctx, "go-long")
	if err != nil {
		t.Fatal(err)
	}
	if ct.State != vesselpb.ContainerState_CONTAINER_STATE_RUNNING {
		t.Fatalf("state after start: %v", ct.State)
	}
	var out, errOut bytes.Buffer
	st, err := c.Exec(ctx, "go-long", []string{"sh", "-c", "echo $X; echo oops >&2; exit 5"},
		vessel.Stdio{Stdout: &out, Stderr: &errOut}, "X=from exec")
	if err != nil {
		t.Fatal(err)
	}
	if st.Code != 5 || out.String() != "from exec\n" || errOut.String() != "oops\n" {
		t.Fatalf("exec: %d %q %q", st.Code, out.String(), errOut.String())
	}
	out.Reset()
	st, err = c.Exec(ctx, "go-long", []string{"cat"}, vessel.Stdio{
		Stdin: strings.NewReader("piped\n"), Stdout: &out})
	if err != nil || st.Code != 0 || out.String() != "piped\n" {
		t.Fatalf("exec with stdin: %v %v %q", st, err, out.String())
	}

	var logged []string
	if err := c.Logs(ctx, "go-long", vessel.LogsOptions{}, func(e *vesselpb.LogEntry) error {
		logged = append(logged, string(e.Data))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(logged, "") != "started\n" {
		t.Fatalf("logs: %q", logged)
	}
	// Until before the first entry: none of them.
	var early []string
	if err := c.Logs(ctx, "go-long", vessel.LogsOptions{Until: time.Unix(1, 0)}, func(e *vesselpb.LogEntry) error {
		early = append(early, string(e.Data))
		return nil
	}); err != nil || len(early) != 0 {
		t.Fatalf("logs until 1970: %q %v", early, err)
	}
	stats, err := c.Stats(ctx, "go-long")
	if err != nil || stats.Memory.GetUsageBytes() == 0 {
		t.Fatalf("stats: %v %v", stats, err)
	}
	running, err := c.ListContainers(ctx, false, "label=suite=go")
	if err != nil || len(running) != 1 || running[0].Id != "go-long" {
		t.Fatalf("list: %v %v", running, err)
	}

	// Follow the log while the container is stopped: Logs returns.
	followed := make(chan error, 1)
	var followLines []string
	go func() {
		followed <- c.Logs(ctx, "go-long", vessel.LogsOptions{Follow: true},
			func(e *vesselpb.LogEntry) error {
				followLines = append(followLines, string(e.Data))
				return nil
			})
	}()
	time.Sleep(300 * time.Millisecond)
	if _, err := c.Stop(ctx, "go-long", time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-followed:
		if err != nil || strings.Join(followLines, "") != "started\n" {
			t.Fatalf("follow: %v %q", err, followLines)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Logs(Follow) did not end when the container stopped")
	}
	// A cancelled follow returns ctx.Err().
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Logs(cctx, "go-long", vessel.LogsOptions{Follow: true},
		func(*vesselpb.LogEntry) error { return nil }); err != context.Canceled {
		t.Fatalf("cancelled Logs: %v", err)
	}
	if err := c.Delete(ctx, "go-long", false); err != nil {
		t.Fatal(err)
	}

	var seen []vesselpb.EventType
	timeout := time.After(30 * time.Second)
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				break loop
			}
			seen = append(seen, ev.Type)
			if ev.Type == vesselpb.EventType_EVENT_TYPE_CONTAINER_DELETED {
				stopEvents()
			}
		case <-timeout:
			t.Fatalf("events so far: %v", seen)
		}
	}
	if err := <-errc; err != nil {
		t.Fatalf("events ended with %v", err)
	}
	want := []vesselpb.EventType{vesselpb.EventType_EVENT_TYPE_CONTAINER_CREATED,
		vesselpb.EventType_EVENT_TYPE_CONTAINER_STARTED,
		vesselpb.EventType_EVENT_TYPE_PROCESS_STARTED, vesselpb.EventType_EVENT_TYPE_PROCESS_STARTED,
		vesselpb.EventType_EVENT_TYPE_CONTAINER_EXITED, vesselpb.EventType_EVENT_TYPE_CONTAINER_DELETED}
	var got []vesselpb.EventType
	for _, ty := range seen { // (vesseld does not emit PROCESS_EXITED yet)
		if ty != vesselpb.EventType_EVENT_TYPE_PROCESS_EXITED {
			got = append(got, ty)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events: got %v, want %v", seen, want)
	}
}

// examples/go, built and run as a user would: over the unix socket, and
// remotely over TCP + mutual TLS (inside the namespace, on its loopback).
func TestExampleGo(t *testing.T) {
	e := vm(t)
	bin := filepath.Join(t.TempDir(), "example")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join("..", "..", "examples", "go")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build examples/go: %v\n%s", err, out)
	}
	runs := map[string][]string{
		"unix": {"VESSEL_HOST=" + e.unix},
		"tcp+mtls": {"VESSEL_HOST=" + e.tcp, "VESSEL_TLS_CA=" + e.certs + "/ca.pem",
			"VESSEL_TLS_CERT=" + e.certs + "/client.pem", "VESSEL_TLS_KEY=" + e.certs + "/client.key"},
	}
	for how, env := range runs {
		cmd := exec.Command(bin)
		if how == "tcp+mtls" {
			cmd = exec.Command("ip", "netns", "exec", e.netns, bin)
		}
		cmd.Env = append(append(os.Environ(), "VESSEL_IMAGE="+testImage), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", how, err, out)
		}
		for _, want := range []string{"docker.io/library/busybox:test", "hello from ",
			"exited with code 0"} {
			if !strings.Contains(string(out), want) {
				t.Fatalf("%s: output lacks %q:\n%s", how, want, out)
			}
		}
	}
	// A failing command's exit code comes through.
	cmd := exec.Command(bin, "sh", "-c", "exit 7")
	cmd.Env = append(os.Environ(), "VESSEL_HOST="+e.unix, "VESSEL_IMAGE="+testImage)
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 7 {
		t.Fatalf("example with exit 7: %v", err)
	}
}

// A pod of two containers: one serves on localhost, the other fetches it;
// both see the pod's hostname; stats list both; DeletePod(force) ends all.
func TestPod(t *testing.T) {
	e := vm(t)
	c, ctx := e.client, longCtx(t)
	pod, err := c.CreatePod(ctx, vessel.WithPodID("go-pod"), vessel.WithHostname("gopod"), vessel.WithSlots(2))
	if err != nil {
		t.Fatal(err)
	}
	defer c.DeletePod(context.Background(), "go-pod", true)
	if pod.State != vesselpb.PodState_POD_STATE_RUNNING || pod.Slots != 2 {
		t.Fatalf("pod: %v", pod)
	}
	if _, err := c.Create(ctx, testImage, []string{"sh", "-c",
		"busybox mkdir /w && echo hello from the pod > /w/index.html && exec busybox httpd -f -p 8080 -h /w"},
		vessel.WithID("go-web"), vessel.InPod("go-pod")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Start(ctx, "go-web"); err != nil {
		t.Fatal(err)
	}
	res, err := c.Run(ctx, testImage, []string{"sh", "-c",
		"busybox hostname; for i in 1 2 3 4 5 6 7 8 9 10; do busybox wget -qO- http://127.0.0.1:8080/index.html && exit; sleep 0.5; done"},
		vessel.InPod("go-pod"))
	if err != nil || string(res.Stdout) != "gopod\nhello from the pod\n" {
		t.Fatalf("run in the pod: %v %q %q", err, res.Stdout, res.Stderr)
	}
	st, err := c.PodStats(ctx, "go-pod")
	if err != nil || len(st.Containers) != 1 || st.Containers[0].ContainerId != "go-web" || st.Vm.HostRssBytes == 0 {
		t.Fatalf("pod stats: %v %v", err, st)
	}
	if pods, err := c.ListPods(ctx); err != nil || len(pods) != 1 || pods[0].Id != "go-pod" {
		t.Fatalf("pods: %v %v", err, pods)
	}
	if err := c.DeletePod(ctx, "go-pod", false); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("delete of a pod with a container: %v", err)
	}
	if err := c.DeletePod(ctx, "go-pod", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Inspect(ctx, "go-web"); status.Code(err) != codes.NotFound {
		t.Fatalf("container outlived its pod: %v", err)
	}
}
