package vessel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vessel/vessel/clients/go/vesselpb"
)

// Stdio connects a process's standard streams. A nil Stdin leaves stdin
// unattached; nil Stdout/Stderr discard that output. When Stdin reaches
// EOF the process's stdin is closed.
type Stdio struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// ContainerOption configures Create and Run.
type ContainerOption func(*containerConfig)

type containerConfig struct {
	req    *vesselpb.ContainersCreateRequest
	stdin  io.Reader
	keep   bool
	stdout io.Writer
	stderr io.Writer
}

func (c *containerConfig) process() *vesselpb.ProcessSpec {
	if c.req.Process == nil {
		c.req.Process = &vesselpb.ProcessSpec{}
	}
	return c.req.Process
}

// WithID names the container (default: a generated ID).
func WithID(id string) ContainerOption { return func(c *containerConfig) { c.req.Id = id } }

// WithEnv adds "KEY=VALUE" entries to the image's environment.
func WithEnv(env ...string) ContainerOption {
	return func(c *containerConfig) { c.process().Env = append(c.process().Env, env...) }
}

// WithWorkdir sets the working directory.
func WithWorkdir(dir string) ContainerOption {
	return func(c *containerConfig) { c.process().Cwd = dir }
}

// WithUser runs as "name", "name:group", "uid" or "uid:gid".
func WithUser(user string) ContainerOption {
	return func(c *containerConfig) { c.process().User = &vesselpb.User{Name: user} }
}

// WithLabels sets user labels.
func WithLabels(labels map[string]string) ContainerOption {
	return func(c *containerConfig) { c.req.Labels = labels }
}

// WithMounts adds host directories ("bind") or tmpfs mounts.
func WithMounts(m ...*vesselpb.Mount) ContainerOption {
	return func(c *containerConfig) { c.req.Mounts = append(c.req.Mounts, m...) }
}

// WithResources sets memory (bytes) and CPU (thousandths of a CPU) limits.
func WithResources(memoryBytes, milliCPUs int64) ContainerOption {
	return func(c *containerConfig) {
		c.req.Resources = &vesselpb.Resources{MemoryBytes: memoryBytes, MilliCpus: milliCPUs}
	}
}

// WithRequest edits the Create request directly, for everything else.
func WithRequest(fn func(*vesselpb.ContainersCreateRequest)) ContainerOption {
	return func(c *containerConfig) { fn(c.req) }
}

// WithStdin (Run only) feeds r to the command's stdin, then closes it.
func WithStdin(r io.Reader) ContainerOption { return func(c *containerConfig) { c.stdin = r } }

// WithOutput (Run only) also streams the output to these writers as it
// arrives (RunResult still holds all of it).
func WithOutput(stdout, stderr io.Writer) ContainerOption {
	return func(c *containerConfig) { c.stdout, c.stderr = stdout, stderr }
}

// WithKeep (Run only) keeps the stopped container instead of deleting it.
func WithKeep() ContainerOption { return func(c *containerConfig) { c.keep = true } }

func containerOptions(image string, cmd []string, opts []ContainerOption) *containerConfig {
	c := &containerConfig{req: &vesselpb.ContainersCreateRequest{Image: image}}
	if len(cmd) > 0 {
		c.process().Args = cmd
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Create creates a container from a local image and boots its VM (state
// CREATED). An empty cmd runs the image's CMD.
func (c *Client) Create(ctx context.Context, image string, cmd []string, opts ...ContainerOption) (*vesselpb.Container, error) {
	r, err := c.API.Containers.Create(ctx, containerOptions(image, cmd, opts).req)
	if err != nil {
		return nil, err
	}
	return r.Container, nil
}

// Start starts a container's init process.
func (c *Client) Start(ctx context.Context, id string) (*vesselpb.Container, error) {
	r, err := c.API.Containers.Start(ctx, &vesselpb.ContainersStartRequest{ContainerId: id})
	if err != nil {
		return nil, err
	}
	return r.Container, nil
}

// Stop stops a container: SIGTERM (or the image's stop signal), up to grace
// (0 = 10 s, negative = forever), then SIGKILL. It returns init's status.
func (c *Client) Stop(ctx context.Context, id string, grace time.Duration) (*vesselpb.ExitStatus, error) {
	ms := grace.Milliseconds()
	if grace < 0 {
		ms = -1
	}
	r, err := c.API.Containers.Stop(ctx, &vesselpb.ContainersStopRequest{ContainerId: id, TimeoutMs: ms})
	if err != nil {
		return nil, err
	}
	return r.ExitStatus, nil
}

// Delete deletes a container (force: kill it first if it runs).
func (c *Client) Delete(ctx context.Context, id string, force bool) error {
	_, err := c.API.Containers.Delete(ctx, &vesselpb.ContainersDeleteRequest{ContainerId: id, Force: force})
	return err
}

// Inspect describes a container.
func (c *Client) Inspect(ctx context.Context, id string) (*vesselpb.Container, error) {
	r, err := c.API.Containers.Inspect(ctx, &vesselpb.ContainersInspectRequest{ContainerId: id})
	if err != nil {
		return nil, err
	}
	return r.Container, nil
}

// ListContainers lists containers (all: in every state, not just running).
func (c *Client) ListContainers(ctx context.Context, all bool, filters ...string) ([]*vesselpb.Container, error) {
	r, err := c.API.Containers.List(ctx, &vesselpb.ContainersListRequest{All: all, Filters: filters})
	if err != nil {
		return nil, err
	}
	return r.Containers, nil
}

// Stats samples a running container's resource usage.
func (c *Client) Stats(ctx context.Context, id string) (*vesselpb.Statistics, error) {
	r, err := c.API.Containers.Stats(ctx, &vesselpb.ContainersStatsRequest{ContainerId: id})
	if err != nil {
		return nil, err
	}
	return r.Statistics, nil
}

// Wait waits for init (execID "") or an exec'd process to exit.
func (c *Client) Wait(ctx context.Context, id, execID string) (*vesselpb.ExitStatus, error) {
	r, err := c.API.Containers.Wait(ctx, &vesselpb.ContainersWaitRequest{ContainerId: id, ExecId: execID})
	if err != nil {
		return nil, err
	}
	return r.ExitStatus, nil
}

// RunResult is what Run returns.
type RunResult struct {
	ID       string               // the container's ID
	ExitCode int                  // exit code (128+signal when killed)
	Stdout   []byte               // everything written to stdout
	Stderr   []byte               // everything written to stderr
	Status   *vesselpb.ExitStatus // the full exit status
}

// Run runs cmd in a new container from image and waits for it: create,
// attach, start, collect the output, wait and (unless WithKeep) delete.
// A non-zero exit code is not an error; RPC failures are (gRPC status errors).
func (c *Client) Run(ctx context.Context, image string, cmd []string, opts ...ContainerOption) (res *RunResult, err error) {
	cfg := containerOptions(image, cmd, opts)
	resp, err := c.API.Containers.Create(ctx, cfg.req)
	if err != nil {
		return nil, err
	}
	id := resp.Container.Id
	if !cfg.keep {
		defer func() {
			// Delete even when ctx is done (a timed-out run must not leak a VM).
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if derr := c.Delete(dctx, id, true); derr != nil && status.Code(derr) != codes.NotFound && err == nil {
				err = derr
			}
		}()
	}
	var stdout, stderr bytes.Buffer
	stdio := Stdio{Stdin: cfg.stdin, Stdout: &stdout, Stderr: &stderr}
	if cfg.stdout != nil {
		stdio.Stdout = io.MultiWriter(&stdout, cfg.stdout)
	}
	if cfg.stderr != nil {
		stdio.Stderr = io.MultiWriter(&stderr, cfg.stderr)
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := c.attach(actx, &vesselpb.ContainersAttachOpen{ContainerId: id, Logs: true}, stdio)
	if err != nil {
		return nil, err
	}
	if _, err := c.Start(ctx, id); err != nil {
		return nil, err
	}
	a.startStdin()
	st, err := a.wait()
	if err != nil {
		return nil, err
	}
	return &RunResult{ID: id, ExitCode: int(st.Code), Stdout: stdout.Bytes(),
		Stderr: stderr.Bytes(), Status: st}, nil
}

// Exec runs cmd in a running container, connected to stdio, and waits for
// it; it returns the exit status (a non-zero code is not an error).
func (c *Client) Exec(ctx context.Context, id string, cmd []string, stdio Stdio, env ...string) (*vesselpb.ExitStatus, error) {
	r, err := c.API.Containers.Exec(ctx, &vesselpb.ContainersExecRequest{ContainerId: id,
		Process: &vesselpb.ProcessSpec{Args: cmd, Env: env}})
	if err != nil {
		return nil, err
	}
	return c.Attach(ctx, id, r.ExecId, stdio, true)
}

// Attach connects stdio to init (execID "") or an exec'd process until it
// exits, and returns its exit status. logs replays earlier output first.
// Attaching to a CREATED container waits for its start. Cancel ctx to
// detach (the process keeps running).
func (c *Client) Attach(ctx context.Context, id, execID string, stdio Stdio, logs bool) (*vesselpb.ExitStatus, error) {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	a, err := c.attach(actx, &vesselpb.ContainersAttachOpen{ContainerId: id, ExecId: execID,
		Logs: logs}, stdio)
	if err != nil {
		return nil, err
	}
	a.startStdin()
	return a.wait()
}

type attachment struct {
	stream vesselpb.Containers_AttachClient
	stdio  Stdio
}

func (c *Client) attach(ctx context.Context, open *vesselpb.ContainersAttachOpen, stdio Stdio) (*attachment, error) {
	open.AttachStdin = stdio.Stdin != nil
	open.AttachStdout, open.AttachStderr = true, true
	s, err := c.API.Containers.Attach(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.Send(&vesselpb.ContainersAttachRequest{
		Kind: &vesselpb.ContainersAttachRequest_Open{Open: open}}); err != nil {
		_, err = s.Recv() // the real status
		return nil, err
	}
	// The request side stays open until the call ends: half-closing detaches.
	return &attachment{stream: s, stdio: stdio}, nil
}

// startStdin feeds Stdin to the process (once it runs: stdin sent to a
// CREATED container's init before Start is not delivered).
func (a *attachment) startStdin() {
	if a.stdio.Stdin != nil {
		go pumpStdin(a.stream, a.stdio.Stdin)
	}
}

func pumpStdin(s vesselpb.Containers_AttachClient, r io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			frame := &vesselpb.StdioFrame{Stream: vesselpb.StdioStream_STDIO_STREAM_STDIN,
				Data: append([]byte(nil), buf[:n]...)}
			if s.Send(&vesselpb.ContainersAttachRequest{
				Kind: &vesselpb.ContainersAttachRequest_Frame{Frame: frame}}) != nil {
				return
			}
		}
		if err != nil { // EOF or a read error: close the process's stdin
			s.Send(&vesselpb.ContainersAttachRequest{Kind: &vesselpb.ContainersAttachRequest_Frame{
				Frame: &vesselpb.StdioFrame{Stream: vesselpb.StdioStream_STDIO_STREAM_STDIN, Eof: true}}})
			return
		}
	}
}

func (a *attachment) wait() (*vesselpb.ExitStatus, error) {
	var exit *vesselpb.ExitStatus
	err := drain(a.stream, func(m *vesselpb.ContainersAttachResponse) error {
		if f := m.GetFrame(); f != nil && len(f.Data) > 0 {
			w := a.stdio.Stdout
			if f.Stream == vesselpb.StdioStream_STDIO_STREAM_STDERR {
				w = a.stdio.Stderr
			}
			if w != nil {
				if _, err := w.Write(f.Data); err != nil {
					return err
				}
			}
		}
		if e := m.GetExit(); e != nil {
			exit = e
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if exit == nil {
		return nil, errors.New("vessel: attach ended without an exit status")
	}
	return exit, nil
}

// LogsOptions selects what Logs returns.
type LogsOptions struct {
	Follow bool      // keep streaming until the container stops (or ctx ends)
	Tail   int64     // only the last N stored entries; 0 = all
	Since  time.Time // only entries at or after this time; zero = all
	Until  time.Time // only entries at or before this time; zero = all (ends a Follow)
}

// Logs calls fn with each entry of init's output log, oldest first. With
// Follow it returns when the container stops; cancel ctx to stop early
// (Logs then returns ctx.Err()). An error from fn ends the stream and is
// returned.
func (c *Client) Logs(ctx context.Context, id string, o LogsOptions, fn func(*vesselpb.LogEntry) error) error {
	req := &vesselpb.ContainersLogsRequest{ContainerId: id, Follow: o.Follow, Tail: o.Tail}
	if !o.Since.IsZero() {
		req.Since = timestamppb.New(o.Since)
	}
	if !o.Until.IsZero() {
		req.Until = timestamppb.New(o.Until)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := c.API.Containers.Logs(lctx, req)
	if err == nil {
		err = drain(s, func(m *vesselpb.ContainersLogsResponse) error {
			for _, e := range m.Entries {
				if err := fn(e); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}
