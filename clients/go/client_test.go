package vessel_test

// Runs against a real vesseld: VESSELD names the binary, VESSEL_CERTS the
// certificate script (bazel test //clients/go:go_test sets both).

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	vessel "github.com/vessel/vessel/clients/go"
)

type daemon struct {
	cmd     *exec.Cmd
	unix    string
	tcp     string
	logDone chan struct{}
}

func startVesseld(t *testing.T, extra ...string) *daemon {
	t.Helper()
	bin := os.Getenv("VESSELD")
	if bin == "" {
		t.Fatal("VESSELD is not set: run through bazel test //clients/go:go_test")
	}
	dir, err := os.MkdirTemp("/tmp", "vsl-go-") // short: unix socket path limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &daemon{unix: "unix://" + filepath.Join(dir, "v.sock"), logDone: make(chan struct{})}
	args := append([]string{"--root", filepath.Join(dir, "root"), "--listen", d.unix}, extra...)
	d.cmd = exec.Command(bin, args...)
	out, _ := d.cmd.StderrPipe()
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	re := regexp.MustCompile(`listening on (tcp://\S+)`)
	go func() {
		defer close(d.logDone)
		s := bufio.NewScanner(out)
		for s.Scan() {
			line := s.Text()
			t.Log("vesseld: " + line)
			if m := re.FindStringSubmatch(line); m != nil {
				d.tcp = m[1]
			}
			if strings.Contains(line, " ready ") {
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("vesseld did not become ready")
	}
	t.Cleanup(func() {
		d.cmd.Process.Signal(os.Interrupt)
		d.cmd.Wait()
		<-d.logDone
	})
	return d
}

func certs(t *testing.T, name string) string {
	dir := filepath.Join(t.TempDir(), name)
	out, err := exec.Command("bash", os.Getenv("VESSEL_CERTS"), dir).CombinedOutput()
	if err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	return dir
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestVersionOverUnix(t *testing.T) {
	d := startVesseld(t)
	c, err := vessel.Dial(ctx(t), d.unix)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Version(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if v.ApiVersion != "vessel.v1" || v.Version == "" {
		t.Fatalf("unexpected version %v", v)
	}
}

func TestVersionOverTCPWithMutualTLS(t *testing.T) {
	good, other := certs(t, "good"), certs(t, "other")
	d := startVesseld(t, "--listen", "tcp://127.0.0.1:0", "--tls-cert", good+"/server.pem",
		"--tls-key", good+"/server.key", "--tls-client-ca", good+"/ca.pem")
	c, err := vessel.Dial(ctx(t), d.tcp, vessel.WithTLS(vessel.TLS{
		CAFile: good + "/ca.pem", CertFile: good + "/client.pem", KeyFile: good + "/client.key"}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if v, err := c.Version(ctx(t)); err != nil || v.ApiVersion != "vessel.v1" {
		t.Fatalf("version over mTLS: %v %v", v, err)
	}

	refused := map[string]vessel.TLS{
		"no client certificate": {CAFile: good + "/ca.pem"},
		"certificate of another CA": {CAFile: good + "/ca.pem",
			CertFile: other + "/client.pem", KeyFile: other + "/client.key"},
	}
	for name, tlsOpt := range refused {
		c, err := vessel.Dial(ctx(t), d.tcp, vessel.WithTLS(tlsOpt))
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Version(ctx(t))
		c.Close()
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: want Unavailable, got %v", name, err)
		}
	}
}

func TestDialRejectsPlainTCPWithoutOption(t *testing.T) {
	if _, err := vessel.Dial(ctx(t), "tcp://127.0.0.1:1"); err == nil {
		t.Fatal("Dial accepted TCP without TLS")
	}
}
