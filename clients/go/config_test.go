package vessel_test

// ResolveEndpoint without a daemon: the cases vesselctl and the Python
// client check too (clients/testdata/config_cases.json).

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	vessel "github.com/vessel/vessel/clients/go"
)

type configCase struct {
	Name     string            `json:"name"`
	File     json.RawMessage   `json:"file"`
	FileText *string           `json:"file_text"`
	Env      map[string]string `json:"env"`
	Host     string            `json:"host"`
	Context  string            `json:"context"`
	TLS      *struct{ CA, Cert, Key string }
	Want     map[string]string `json:"want"`
	Error    string            `json:"error"`
}

func TestConfigSharedCases(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "config_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Cases []configCase }
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) < 20 {
		t.Fatalf("only %d cases", len(doc.Cases))
	}
	for _, tc := range doc.Cases {
		t.Run(tc.Name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "vessel")
			path := filepath.Join(dir, "config")
			if tc.File != nil || tc.FileText != nil {
				os.MkdirAll(dir, 0o700)
				text := []byte(tc.File)
				if tc.FileText != nil {
					text = []byte(*tc.FileText)
				}
				if err := os.WriteFile(path, text, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			cfg := vessel.Config{Host: tc.Host, Context: tc.Context, Path: path,
				Getenv: func(k string) string { return tc.Env[k] }}
			if tc.TLS != nil {
				cfg.TLS = &vessel.TLS{CAFile: tc.TLS.CA, CertFile: tc.TLS.Cert, KeyFile: tc.TLS.Key}
			}
			ep, err := vessel.ResolveEndpoint(cfg)
			if tc.Error != "" {
				var ce *vessel.ConfigError
				want := strings.ReplaceAll(tc.Error, "CONFIG", path)
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want a ConfigError with %q", err, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := func(k string) string { return strings.ReplaceAll(tc.Want[k], "DIR", dir) }
			tls := vessel.TLS{}
			if ep.TLS != nil {
				tls = *ep.TLS
			}
			got := []string{ep.Host, tls.CAFile, tls.CertFile, tls.KeyFile, tls.ServerName}
			exp := []string{want("host"), want("tls_ca"), want("tls_cert"), want("tls_key"), want("server_name")}
			if strings.Join(got, "|") != strings.Join(exp, "|") {
				t.Fatalf("got %q, want %q", got, exp)
			}
			if s, ok := tc.Want["source"]; ok && ep.Source != s {
				t.Fatalf("source %q, want %q", ep.Source, s)
			}
		})
	}
}

func TestConfigPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"XDG_CONFIG_HOME": "/x", "HOME": "/h"}, "/x/vessel/config"},
		{map[string]string{"XDG_CONFIG_HOME": "rel", "HOME": "/h"}, "/h/.config/vessel/config"},
		{map[string]string{"HOME": "/h"}, "/h/.config/vessel/config"},
		{map[string]string{}, ""},
	} {
		if got := vessel.ConfigPath(env(c.env)); got != c.want {
			t.Errorf("%v: %q, want %q", c.env, got, c.want)
		}
	}
	// No file to read: the default still resolves, a context does not.
	ep, err := vessel.ResolveEndpoint(vessel.Config{Getenv: env(map[string]string{})})
	if err != nil || ep.Host != vessel.DefaultAddress {
		t.Fatalf("%v %v", ep, err)
	}
	_, err = vessel.ResolveEndpoint(vessel.Config{Getenv: env(map[string]string{"VESSEL_CONTEXT": "a"})})
	if err == nil || !strings.Contains(err.Error(), "no contexts file") {
		t.Fatal(err)
	}
}

// FromEnv reads the process's environment and dials what it resolves.
func TestFromEnvDialsTheResolvedHost(t *testing.T) {
	t.Setenv("VESSEL_HOST", "unix:///tmp/vsl-none.sock")
	t.Setenv("VESSEL_CONTEXT", "")
	c, err := vessel.FromEnv(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	t.Setenv("VESSEL_HOST", "tcp://127.0.0.1:1")
	if _, err := vessel.FromEnv(context.Background()); err == nil ||
		!strings.Contains(err.Error(), "requires mutual TLS") {
		t.Fatalf("TCP without TLS: %v", err)
	}
	if c, err := vessel.FromEnv(context.Background(), vessel.WithInsecure()); err != nil {
		t.Fatalf("TCP with WithInsecure: %v", err)
	} else {
		c.Close()
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if _, err := vessel.FromEnv(context.Background(), vessel.WithContextName("nope")); err == nil ||
		!strings.Contains(err.Error(), `WithContextName: unknown context "nope"`) {
		t.Fatalf("unknown context: %v", err)
	}
}
