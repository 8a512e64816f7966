// Command example lists vesseld's local images and runs a command in a new
// container VM, streaming its output.
//
//	go run . [command args...]      (default: sh -c 'echo hello from $(hostname)')
//
//	VESSEL_HOST     vesseld to talk to (unix:///PATH, or tcp://HOST:PORT with
//	                the three files below); else VESSEL_CONTEXT or the current
//	                context of `vesselctl context`; else the local socket
//	VESSEL_TLS_CA, VESSEL_TLS_CERT, VESSEL_TLS_KEY   PEM files for TCP + mutual TLS
//	VESSEL_IMAGE    image to run (default docker.io/library/busybox:latest;
//	                pulled when it is not local yet)
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	vessel "github.com/vessel/vessel/clients/go"
	"github.com/vessel/vessel/clients/go/vesselpb"
)

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	code, err := run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "example:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(ctx context.Context) (int, error) {
	image := getenv("VESSEL_IMAGE", "docker.io/library/busybox:latest")
	// The vesseld vesselctl would talk to (VESSEL_HOST, VESSEL_CONTEXT, the
	// contexts file); vessel.Dial(ctx, address, ...) names one outright.
	ep, err := vessel.ResolveEndpoint(vessel.Config{})
	if err != nil {
		return 0, err
	}
	c, err := vessel.FromEnv(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close()

	images, err := c.ListImages(ctx)
	if err != nil {
		return 0, err
	}
	fmt.Printf("%d local image(s) at %s (from %s):\n", len(images), ep.Host, ep.Source)
	for _, img := range images {
		fmt.Printf("  %-50s %.19s  %d bytes\n", img.Name, img.Target.GetDigest(), img.Size)
	}

	if _, err := c.InspectImage(ctx, image); status.Code(err) == codes.NotFound {
		fmt.Printf("pulling %s\n", image)
		img, err := c.Pull(ctx, image, vessel.WithProgress(func(p *vesselpb.TransferProgress) {
			if p.BytesTotal > 0 {
				fmt.Printf("\r  %3d%%", p.BytesDone*100/p.BytesTotal)
			}
		}))
		if err != nil {
			return 0, err
		}
		fmt.Printf("\npulled %s\n", img.Target.GetDigest())
	} else if err != nil {
		return 0, err
	}

	cmd := os.Args[1:]
	if len(cmd) == 0 {
		cmd = []string{"sh", "-c", "echo hello from $(hostname)"}
	}
	fmt.Printf("running %q in %s\n", cmd, image)
	res, err := c.Run(ctx, image, cmd, vessel.WithOutput(os.Stdout, os.Stderr))
	if err != nil {
		return 0, err
	}
	fmt.Printf("container %.12s exited with code %d\n", res.ID, res.ExitCode)
	return res.ExitCode, nil
}
