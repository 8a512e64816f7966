package vessel

import (
	"context"
	"time"

	"github.com/vessel/vessel/clients/go/vesselpb"
)

// PodOption configures CreatePod.
type PodOption func(*vesselpb.PodsCreateRequest)

// WithPodID names the pod (default: a generated ID).
func WithPodID(id string) PodOption { return func(r *vesselpb.PodsCreateRequest) { r.Id = id } }

// WithHostname sets the hostname its containers share.
func WithHostname(h string) PodOption {
	return func(r *vesselpb.PodsCreateRequest) { r.Hostname = h }
}

// WithSlots sets how many containers the pod holds at once (default 4).
func WithSlots(n uint32) PodOption { return func(r *vesselpb.PodsCreateRequest) { r.Slots = n } }

// WithPodNetworks attaches the pod to these networks, in order.
func WithPodNetworks(names ...string) PodOption {
	return func(r *vesselpb.PodsCreateRequest) {
		for _, n := range names {
			r.Networks = append(r.Networks, &vesselpb.NetworkAttachment{Network: n})
		}
	}
}

// WithVolumes shares host directories with the pod's containers (each
// mounts one with a bind Mount of the same source).
func WithVolumes(hostDirs ...string) PodOption {
	return func(r *vesselpb.PodsCreateRequest) {
		for _, d := range hostDirs {
			r.Volumes = append(r.Volumes, &vesselpb.Mount{Type: "bind", Source: d})
		}
	}
}

// WithPodRequest edits the request directly (ports, DNS, labels, ...).
func WithPodRequest(fn func(*vesselpb.PodsCreateRequest)) PodOption { return PodOption(fn) }

// InPod creates the container in a running pod (see CreatePod).
func InPod(podID string) ContainerOption {
	return func(c *containerConfig) { c.req.PodId = podID }
}

// CreatePod boots a pod's VM: several containers in one VM, sharing its
// network namespace, hostname and volumes. Add containers with
// Create(..., InPod(pod.Id)).
func (c *Client) CreatePod(ctx context.Context, opts ...PodOption) (*vesselpb.Pod, error) {
	req := &vesselpb.PodsCreateRequest{}
	for _, o := range opts {
		o(req)
	}
	r, err := c.API.Pods.Create(ctx, req)
	if err != nil {
		return nil, err
	}
	return r.Pod, nil
}

// InspectPod describes a pod.
func (c *Client) InspectPod(ctx context.Context, id string) (*vesselpb.Pod, error) {
	r, err := c.API.Pods.Inspect(ctx, &vesselpb.PodsInspectRequest{PodId: id})
	if err != nil {
		return nil, err
	}
	return r.Pod, nil
}

// ListPods lists pods, newest first.
func (c *Client) ListPods(ctx context.Context) ([]*vesselpb.Pod, error) {
	r, err := c.API.Pods.List(ctx, &vesselpb.PodsListRequest{})
	if err != nil {
		return nil, err
	}
	return r.Pods, nil
}

// StopPod stops its containers (SIGKILL after grace; 0 = 10 s), then its VM.
func (c *Client) StopPod(ctx context.Context, id string, grace time.Duration) (*vesselpb.Pod, error) {
	r, err := c.API.Pods.Stop(ctx, &vesselpb.PodsStopRequest{PodId: id, TimeoutMs: grace.Milliseconds()})
	if err != nil {
		return nil, err
	}
	return r.Pod, nil
}

// PodStats samples the pod's VM and each running container in it.
func (c *Client) PodStats(ctx context.Context, id string) (*vesselpb.PodsStatsResponse, error) {
	return c.API.Pods.Stats(ctx, &vesselpb.PodsStatsRequest{PodId: id})
}

// DeletePod deletes a pod; force also deletes its containers.
func (c *Client) DeletePod(ctx context.Context, id string, force bool) error {
	_, err := c.API.Pods.Delete(ctx, &vesselpb.PodsDeleteRequest{PodId: id, Force: force})
	return err
}
