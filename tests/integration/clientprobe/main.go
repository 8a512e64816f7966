// Command clientprobe is a program outside the vessel module that uses the
// Go client as any other would (tests/integration/test_client_config.py
// copies it into a module of its own, with a replace directive pointing at
// the checkout). It connects with vessel.FromEnv and prints the answering
// vesseld's root directory and API version.
//
//	clientprobe [-host ADDR | -context NAME]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	vessel "github.com/vessel/vessel/clients/go"
)

func main() {
	host := flag.String("host", "", "vesseld address (beats VESSEL_HOST and contexts)")
	name := flag.String("context", "", "a context of the contexts file")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var opts []vessel.Option
	if *host != "" {
		opts = append(opts, vessel.WithHost(*host))
	}
	if *name != "" {
		opts = append(opts, vessel.WithContextName(*name))
	}
	c, err := vessel.FromEnv(ctx, opts...)
	var ce *vessel.ConfigError
	if errors.As(err, &ce) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	info, err := c.Info(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	v, err := c.Version(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("root=%s\napi=%s\n", info.RootDir, v.ApiVersion)
}
