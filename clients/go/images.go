package vessel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/vessel/vessel/clients/go/vesselpb"
)

// TransferOption configures Pull and Push.
type TransferOption func(*transfer)

type transfer struct {
	platform    *vesselpb.Platform
	auth        *vesselpb.RegistryAuth
	insecure    bool
	destination string
	progress    func(*vesselpb.TransferProgress)
}

// WithPlatform selects a platform of a multi-platform image:
// "linux/arm64", "linux/arm/v7" or just "arm64" (default: the host's).
func WithPlatform(p string) TransferOption {
	return func(t *transfer) { t.platform = ParsePlatform(p) }
}

// WithAuth passes registry credentials for this call (default: those stored
// by Login, else anonymous).
func WithAuth(username, password string) TransferOption {
	return func(t *transfer) {
		t.auth = &vesselpb.RegistryAuth{Username: username, Password: password}
	}
}

// WithInsecureRegistry talks plain HTTP (and accepts any certificate).
func WithInsecureRegistry() TransferOption { return func(t *transfer) { t.insecure = true } }

// WithProgress calls fn with every progress snapshot of the transfer.
func WithProgress(fn func(*vesselpb.TransferProgress)) TransferOption {
	return func(t *transfer) { t.progress = fn }
}

// WithDestination pushes to another reference than the local one.
func WithDestination(ref string) TransferOption {
	return func(t *transfer) { t.destination = ref }
}

// ParsePlatform turns "os/arch[/variant]" or "arch" into a Platform.
func ParsePlatform(p string) *vesselpb.Platform {
	if p == "" {
		return nil
	}
	parts := strings.Split(p, "/")
	if len(parts) == 1 {
		return &vesselpb.Platform{Os: "linux", Architecture: parts[0]}
	}
	pl := &vesselpb.Platform{Os: parts[0], Architecture: parts[1]}
	if len(parts) > 2 {
		pl.Variant = parts[2]
	}
	return pl
}

// drain calls each with every message of a server stream until it ends.
func drain[M any](s interface{ Recv() (M, error) }, each func(M) error) error {
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := each(m); err != nil {
			return err
		}
	}
}

func transferOptions(opts []TransferOption) transfer {
	var t transfer
	for _, o := range opts {
		o(&t)
	}
	return t
}

// Pull pulls an image from its registry and returns the local image.
func (c *Client) Pull(ctx context.Context, ref string, opts ...TransferOption) (*vesselpb.Image, error) {
	t := transferOptions(opts)
	stream, err := c.API.Images.Pull(ctx, &vesselpb.ImagesPullRequest{
		Reference: ref, Platform: t.platform, Auth: t.auth, Insecure: t.insecure})
	if err != nil {
		return nil, err
	}
	var img *vesselpb.Image
	err = drain(stream, func(m *vesselpb.ImagesPullResponse) error {
		if p := m.GetProgress(); p != nil && t.progress != nil {
			t.progress(p)
		}
		if i := m.GetImage(); i != nil {
			img = i
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if img == nil {
		return nil, errors.New("vessel: pull ended without an image")
	}
	return img, nil
}

// Push pushes a local image (to WithDestination, default the same
// reference) and returns the descriptor of the pushed manifest or index.
func (c *Client) Push(ctx context.Context, ref string, opts ...TransferOption) (*vesselpb.Descriptor, error) {
	t := transferOptions(opts)
	stream, err := c.API.Images.Push(ctx, &vesselpb.ImagesPushRequest{Reference: ref,
		Destination: t.destination, Platform: t.platform, Auth: t.auth, Insecure: t.insecure})
	if err != nil {
		return nil, err
	}
	var pushed *vesselpb.Descriptor
	err = drain(stream, func(m *vesselpb.ImagesPushResponse) error {
		if p := m.GetProgress(); p != nil && t.progress != nil {
			t.progress(p)
		}
		if d := m.GetPushed(); d != nil {
			pushed = d
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if pushed == nil {
		return nil, errors.New("vessel: push ended without a result")
	}
	return pushed, nil
}

// ListImages lists local images; filters are "key=value" ("reference=docker.io/*",
// "label=k=v", "dangling=true").
func (c *Client) ListImages(ctx context.Context, filters ...string) ([]*vesselpb.Image, error) {
	r, err := c.API.Images.List(ctx, &vesselpb.ImagesListRequest{Filters: filters})
	if err != nil {
		return nil, err
	}
	return r.Images, nil
}

// InspectImage describes one local image (reference, digest or digest prefix).
func (c *Client) InspectImage(ctx context.Context, ref string) (*vesselpb.Image, error) {
	r, err := c.API.Images.Inspect(ctx, &vesselpb.ImagesInspectRequest{Reference: ref})
	if err != nil {
		return nil, err
	}
	return r.Image, nil
}

// DeleteImage removes an image reference.
func (c *Client) DeleteImage(ctx context.Context, ref string, force bool) error {
	_, err := c.API.Images.Delete(ctx, &vesselpb.ImagesDeleteRequest{Reference: ref, Force: force})
	return err
}

// Load imports images from a tar archive (OCI layout or "docker save",
// optionally gzip-compressed); reference names a single-image archive.
func (c *Client) Load(ctx context.Context, r io.Reader, reference string) ([]*vesselpb.Image, error) {
	stream, err := c.API.Images.Import(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&vesselpb.ImagesImportRequest{Kind: &vesselpb.ImagesImportRequest_Header{
		Header: &vesselpb.ImagesImportHeader{Reference: reference}}}); err != nil {
		_, err = stream.CloseAndRecv()
		return nil, err
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			data := append([]byte(nil), buf[:n]...)
			if err := stream.Send(&vesselpb.ImagesImportRequest{
				Kind: &vesselpb.ImagesImportRequest_Data{Data: data}}); err != nil {
				break // the status comes with CloseAndRecv
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			stream.CloseSend()
			return nil, fmt.Errorf("vessel: load: %w", rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, err
	}
	return resp.Images, nil
}

// Save writes images as an OCI archive to w.
func (c *Client) Save(ctx context.Context, w io.Writer, refs ...string) error {
	stream, err := c.API.Images.Export(ctx, &vesselpb.ImagesExportRequest{References: refs,
		Format: vesselpb.ArchiveFormat_ARCHIVE_FORMAT_OCI})
	if err != nil {
		return err
	}
	return drain(stream, func(m *vesselpb.ImagesExportResponse) error {
		_, err := w.Write(m.Data)
		return err
	})
}

// Login verifies and stores registry credentials; it returns the registry
// name they are stored under.
func (c *Client) Login(ctx context.Context, server, username, password string) (string, error) {
	r, err := c.API.Images.Login(ctx, &vesselpb.ImagesLoginRequest{Server: server,
		Username: username, Password: password})
	if err != nil {
		return "", err
	}
	return r.Server, nil
}
