// Package vessel is the Go client of vessel: Linux containers, each in its
// own lightweight VM, managed through the vessel.v1 gRPC API.
//
//	c, err := vessel.Dial(ctx, "unix:///run/vessel/vessel.sock")
//	v, err := c.Version(ctx)
//
// Helpers take a context first and return generated vesselpb messages;
// errors are gRPC status errors (status.Code(err) gives the code):
//
//	img, err := c.Pull(ctx, "docker.io/library/busybox:latest",
//		vessel.WithProgress(func(p *vesselpb.TransferProgress) { ... }))
//	res, err := c.Run(ctx, "busybox", []string{"echo", "hi"})  // res.ExitCode, res.Stdout
//	st, err := c.Exec(ctx, id, []string{"ls"}, vessel.Stdio{Stdout: os.Stdout})
//	err = c.Logs(ctx, id, vessel.LogsOptions{Follow: true}, func(e *vesselpb.LogEntry) error { ... })
//	events, errc := c.Events(ctx, vessel.EventFilter{ContainerID: id})
//	pod, err := c.CreatePod(ctx, vessel.WithHostname("web"))  // several containers, one VM
//	_, err = c.Create(ctx, "busybox", []string{"httpd", "-f"}, vessel.InPod(pod.Id))
//
// The generated stubs of every service (package vesselpb) are in c.API for
// everything the helpers do not cover.
package vessel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vessel/vessel/clients/go/vesselpb"
)

// DefaultAddress is where a local vesseld listens by default.
const DefaultAddress = "unix:///run/vessel/vessel.sock"

// TLS names the PEM files for a TCP connection with mutual TLS.
type TLS struct {
	CAFile     string // CA that signed vesseld's certificate
	CertFile   string // client certificate
	KeyFile    string // client key
	ServerName string // overrides the name checked in vesseld's certificate
}

type options struct {
	tls         *TLS
	insecure    bool
	dial        []grpc.DialOption
	host        string // FromEnv only
	contextName string // FromEnv only
}

// Option configures Dial.
type Option func(*options)

// WithTLS connects over TLS with a client certificate (mutual TLS). With
// FromEnv it replaces the TLS files that came with the address.
func WithTLS(t TLS) Option { return func(o *options) { o.tls = &t } }

// WithInsecure allows plaintext TCP (vesseld started with --insecure-tcp).
func WithInsecure() Option { return func(o *options) { o.insecure = true } }

// WithDialOptions passes extra grpc.DialOptions.
func WithDialOptions(d ...grpc.DialOption) Option {
	return func(o *options) { o.dial = append(o.dial, d...) }
}

// API holds the generated stub of each vessel.v1 service.
type API struct {
	System     vesselpb.SystemClient
	Images     vesselpb.ImagesClient
	Containers vesselpb.ContainersClient
	Events     vesselpb.EventsClient
	Networks   vesselpb.NetworksClient
	Pods       vesselpb.PodsClient
}

// Client is a connection to vesseld. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	// API gives the raw generated stubs, e.g. c.API.Containers.Signal(ctx, req).
	API API
}

// Dial connects to vesseld at address: "unix:///path" or "tcp://host:port".
// TCP needs WithTLS (vesseld requires client certificates) or WithInsecure.
func Dial(ctx context.Context, address string, opts ...Option) (*Client, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	target := address
	var creds credentials.TransportCredentials
	switch {
	case strings.HasPrefix(address, "unix://"):
		creds = insecure.NewCredentials()
	case strings.HasPrefix(address, "tcp://"):
		target = strings.TrimPrefix(address, "tcp://")
		switch {
		case o.tls != nil:
			c, err := tlsConfig(o.tls)
			if err != nil {
				return nil, err
			}
			creds = credentials.NewTLS(c)
		case o.insecure:
			creds = insecure.NewCredentials()
		default:
			return nil, fmt.Errorf("vessel: %s: TCP needs WithTLS (or WithInsecure)", address)
		}
	default:
		return nil, fmt.Errorf("vessel: address %q: use unix:///path or tcp://host:port", address)
	}
	dial := append([]grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(128 << 20)),
	}, o.dial...)
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("vessel: dial %s: %w", address, err)
	}
	return &Client{conn: conn, API: API{
		System:     vesselpb.NewSystemClient(conn),
		Images:     vesselpb.NewImagesClient(conn),
		Containers: vesselpb.NewContainersClient(conn),
		Events:     vesselpb.NewEventsClient(conn),
		Networks:   vesselpb.NewNetworksClient(conn),
		Pods:       vesselpb.NewPodsClient(conn),
	}}, nil
}

func tlsConfig(t *TLS) (*tls.Config, error) {
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("vessel: CA: %w", err)
	}
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("vessel: %s holds no PEM certificate", t.CAFile)
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("vessel: client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn returns the underlying gRPC connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Version returns vesseld's version information.
func (c *Client) Version(ctx context.Context) (*vesselpb.SystemVersionResponse, error) {
	return c.API.System.Version(ctx, &vesselpb.SystemVersionRequest{})
}

// Info returns host, configuration and inventory information.
func (c *Client) Info(ctx context.Context) (*vesselpb.SystemInfoResponse, error) {
	return c.API.System.Info(ctx, &vesselpb.SystemInfoRequest{})
}
