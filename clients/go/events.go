package vessel

import (
	"context"
	"io"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/vessel/vessel/clients/go/vesselpb"
)

// EventFilter selects events; the zero value means every live event.
type EventFilter struct {
	Types         []vesselpb.EventType // only these types (OR); empty = all
	ContainerID   string               // only about this container
	Since         time.Time            // replay history from this time first
	AfterSequence uint64               // replay history after this sequence first
}

// Events subscribes to vesseld's events. Events arrive on the first channel,
// which is closed when the subscription ends; the second channel then
// delivers the reason (nil when ctx was cancelled, else the gRPC error)
// and is closed. Cancel ctx to unsubscribe.
func (c *Client) Events(ctx context.Context, f EventFilter) (<-chan *vesselpb.Event, <-chan error) {
	events := make(chan *vesselpb.Event, 64)
	errc := make(chan error, 1)
	req := &vesselpb.EventsSubscribeRequest{Types: f.Types, ContainerId: f.ContainerID,
		AfterSequence: f.AfterSequence}
	if !f.Since.IsZero() {
		req.Since = timestamppb.New(f.Since)
	}
	go func() {
		defer close(errc)
		defer close(events)
		s, err := c.API.Events.Subscribe(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				err = nil
			}
			errc <- err
			return
		}
		for {
			m, err := s.Recv()
			if err != nil {
				if err == io.EOF || ctx.Err() != nil {
					err = nil
				}
				errc <- err
				return
			}
			select {
			case events <- m.Event:
			case <-ctx.Done():
				errc <- nil
				return
			}
		}
	}()
	return events, errc
}
