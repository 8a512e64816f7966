package vessel

// Which vesseld a client reaches: explicit choices, the VESSEL_* environment
// and the contexts file, by the same rules as vesselctl
// (clients/cli/clientcfg.h) and the Python client (vessel/config.py). The
// first of these that is set picks the address:
//
//  1. an explicit host or context (WithHost, WithContextName; Config.Host,
//     Config.Context),
//  2. VESSEL_HOST (TLS files from VESSEL_TLS_CA, VESSEL_TLS_CERT,
//     VESSEL_TLS_KEY),
//  3. VESSEL_CONTEXT, a context of the contexts file,
//  4. the file's current context,
//  5. DefaultAddress.
//
// Explicit TLS (WithTLS) replaces the TLS files that came with the address;
// TLS applies to tcp:// only. The contexts file is
// $XDG_CONFIG_HOME/vessel/config (else ~/.config/vessel/config), JSON:
//
//	{"current": "lab",
//	 "contexts": {"lab": {"host": "tcp://h:7443", "tls_ca": "ca.pem",
//	                      "tls_cert": "client.pem", "tls_key": "client.key",
//	                      "server_name": "optional"}}}
//
// Relative TLS paths are relative to the file's directory. `vesselctl
// context create|use|rm` writes it. The context "default" is DefaultAddress.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// DefaultContext is the context naming DefaultAddress; it cannot be defined.
const DefaultContext = "default"

var hostPattern = regexp.MustCompile(`^(unix:///.+|tcp://.+:[0-9]{1,5})$`)

// ConfigError says why the configuration names no usable vesseld: an
// unknown context, a malformed contexts file (the message names it), a bad
// host, TCP without TLS files.
type ConfigError struct{ Msg string }

func (e *ConfigError) Error() string { return "vessel: " + e.Msg }

func configErr(format string, a ...any) error { return &ConfigError{fmt.Sprintf(format, a...)} }

// Endpoint is where to connect, as ResolveEndpoint found it.
type Endpoint struct {
	Host   string
	TLS    *TLS   // nil for unix://
	Source string // where Host came from ("VESSEL_HOST", `context "lab" (VESSEL_CONTEXT)`, ...)
}

// Config holds what ResolveEndpoint starts from besides the environment.
type Config struct {
	Host     string // explicit address (a flag); "" = not given
	Context  string // explicit context; "" = not given
	TLS      *TLS   // explicit TLS files, replacing those that came with the address
	Insecure bool   // allow tcp:// without TLS (vesseld --insecure-tcp)
	// Getenv reads the environment (nil: os.Getenv).
	Getenv func(string) string
	// Path is the contexts file ("": ConfigPath()).
	Path string
}

// ConfigPath is the contexts file's path from getenv (nil: os.Getenv); ""
// when neither XDG_CONFIG_HOME nor HOME is set. An XDG_CONFIG_HOME that is
// not absolute is ignored, as the XDG spec says.
func ConfigPath(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	if xdg := getenv("XDG_CONFIG_HOME"); strings.HasPrefix(xdg, "/") {
		return filepath.Join(xdg, "vessel", "config")
	}
	if home := getenv("HOME"); home != "" {
		return filepath.Join(home, ".config", "vessel", "config")
	}
	return ""
}

// Context is one named vesseld of the contexts file.
type Context struct {
	Host       string `json:"host"`
	TLSCA      string `json:"tls_ca,omitempty"`
	TLSCert    string `json:"tls_cert,omitempty"`
	TLSKey     string `json:"tls_key,omitempty"`
	ServerName string `json:"server_name,omitempty"`
}

// Contexts is the contexts file, read and checked by LoadContexts.
type Contexts struct {
	Path     string
	Current  string
	Contexts map[string]Context
}

// LoadContexts reads the contexts file at path and checks it as vesselctl
// does (a missing file is an empty one). A malformed file is a
// *ConfigError naming path.
func LoadContexts(path string) (*Contexts, error) {
	c := &Contexts{Path: path, Contexts: map[string]Context{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, configErr("%v", err)
	}
	malformed := func(format string, a ...any) error {
		return configErr("%s: malformed contexts file: %s", path, fmt.Sprintf(format, a...))
	}
	if err := noDuplicateKeys(data); err != nil {
		return nil, malformed("%v", err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, malformed("%v", err)
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, malformed("the top level must be an object")
	}
	if cur, ok := top["current"]; ok && cur != nil {
		if c.Current, ok = cur.(string); !ok {
			return nil, malformed(`"current" must be a string`)
		}
	}
	all, ok := top["contexts"].(map[string]any)
	if !ok && top["contexts"] != nil {
		return nil, malformed(`"contexts" must be an object`)
	}
	for name, v := range all {
		o, ok := v.(map[string]any)
		if !ok {
			return nil, malformed("context %q must be an object", name)
		}
		host, ok := o["host"].(string)
		if !ok {
			return nil, malformed("context %q has no \"host\" string", name)
		}
		if !hostPattern.MatchString(host) {
			return nil, configErr("%s: context %q: host %q must be unix:///path or tcp://host:port",
				path, name, host)
		}
		str := map[string]string{}
		for _, k := range []string{"tls_ca", "tls_cert", "tls_key", "server_name"} {
			if o[k] == nil {
				continue
			}
			if str[k], ok = o[k].(string); !ok {
				return nil, malformed("context %q: %q must be a string", name, k)
			}
		}
		c.Contexts[name] = Context{Host: host, TLSCA: str["tls_ca"], TLSCert: str["tls_cert"],
			TLSKey: str["tls_key"], ServerName: str["server_name"]}
	}
	return c, nil
}

// noDuplicateKeys fails on an object that names a key twice (encoding/json
// would keep the last one silently; vesselctl and Python refuse it).
func noDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next token of an object is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the end, or a syntax error, which json.Unmarshal reports
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if s, ok := tok.(string); ok {
				if top.keys[s] {
					return fmt.Errorf("duplicate key %q", s)
				}
				top.keys[s] = true
				top.key = false
				continue
			}
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, &frame{keys: map[string]bool{}, object: true, key: true})
			continue
		case json.Delim('['):
			stack = append(stack, &frame{})
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
		// a value ended: in an object, a key comes next
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

func (c *Contexts) endpoint(name, where string) (Endpoint, error) {
	ctx, ok := c.Contexts[name]
	if !ok {
		names := make([]string, 0, len(c.Contexts))
		for n := range c.Contexts {
			names = append(names, n)
		}
		sort.Strings(names)
		known := strings.Join(names, ", ")
		if known == "" {
			known = "none"
		}
		return Endpoint{}, configErr("%s: unknown context %q: %s defines %s", where, name, c.Path, known)
	}
	file := func(p string) string {
		if p != "" && !strings.HasPrefix(p, "/") {
			return filepath.Join(filepath.Dir(c.Path), p)
		}
		return p
	}
	ep := Endpoint{Host: ctx.Host, Source: fmt.Sprintf("context %q (%s)", name, where)}
	if ctx.TLSCA != "" || ctx.TLSCert != "" || ctx.TLSKey != "" {
		ep.TLS = &TLS{CAFile: file(ctx.TLSCA), CertFile: file(ctx.TLSCert), KeyFile: file(ctx.TLSKey),
			ServerName: ctx.ServerName}
	}
	return ep, nil
}

// ResolveEndpoint applies the rules above to cfg, the environment and the
// contexts file, which it reads only when a context is needed.
func ResolveEndpoint(cfg Config) (Endpoint, error) {
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	path := cfg.Path
	if path == "" {
		path = ConfigPath(getenv)
	}
	fromContext := func(name, where string) (Endpoint, error) {
		if name == DefaultContext {
			return Endpoint{Host: DefaultAddress, Source: fmt.Sprintf("context %q (%s)", name, where)}, nil
		}
		if path == "" {
			return Endpoint{}, configErr("%s: unknown context %q: no contexts file (neither "+
				"XDG_CONFIG_HOME nor HOME is set)", where, name)
		}
		c, err := LoadContexts(path)
		if err != nil {
			return Endpoint{}, err
		}
		return c.endpoint(name, where)
	}
	var ep Endpoint
	var err error
	envTLS := false
	switch {
	case cfg.Host != "" && cfg.Context != "":
		return Endpoint{}, configErr("give host or context, not both")
	case cfg.Host != "":
		ep, envTLS = Endpoint{Host: cfg.Host, Source: "WithHost"}, true
	case cfg.Context != "":
		ep, err = fromContext(cfg.Context, "WithContextName")
	case getenv("VESSEL_HOST") != "":
		ep, envTLS = Endpoint{Host: getenv("VESSEL_HOST"), Source: "VESSEL_HOST"}, true
	case getenv("VESSEL_CONTEXT") != "":
		ep, err = fromContext(getenv("VESSEL_CONTEXT"), "VESSEL_CONTEXT")
	default:
		ep = Endpoint{Host: DefaultAddress, Source: "the default"}
		if path != "" {
			c, lerr := LoadContexts(path)
			if lerr != nil {
				return Endpoint{}, lerr
			}
			if c.Current != "" {
				ep, err = fromContext(c.Current, "the current context")
			}
		}
	}
	if err != nil {
		return Endpoint{}, err
	}
	if ca := getenv("VESSEL_TLS_CA"); envTLS && ca != "" {
		// an address given outright takes its TLS files from the environment
		ep.TLS = &TLS{CAFile: ca, CertFile: getenv("VESSEL_TLS_CERT"), KeyFile: getenv("VESSEL_TLS_KEY")}
	}
	if cfg.TLS != nil {
		t := *cfg.TLS
		ep.TLS = &t
	}
	if !hostPattern.MatchString(ep.Host) {
		return Endpoint{}, configErr("host %q (from %s) must be unix:///path or tcp://host:port",
			ep.Host, ep.Source)
	}
	if strings.HasPrefix(ep.Host, "unix://") {
		ep.TLS = nil // a unix socket is local and plaintext
	} else if (ep.TLS == nil || ep.TLS.CAFile == "") && !cfg.Insecure {
		return Endpoint{}, configErr("%s (from %s) is TCP: vesseld requires mutual TLS: give WithTLS "+
			"(or VESSEL_TLS_CA, VESSEL_TLS_CERT and VESSEL_TLS_KEY, or a context's tls_ca, tls_cert "+
			"and tls_key)", ep.Host, ep.Source)
	}
	return ep, nil
}

// WithHost makes FromEnv use this address, whatever the environment says.
func WithHost(address string) Option { return func(o *options) { o.host = address } }

// WithContextName makes FromEnv use this context of the contexts file.
func WithContextName(name string) Option { return func(o *options) { o.contextName = name } }

// FromEnv connects to the vesseld that WithHost / WithContextName,
// VESSEL_HOST / VESSEL_CONTEXT and the contexts file choose, as vesselctl
// does (see ResolveEndpoint). An unusable configuration is a *ConfigError.
func FromEnv(ctx context.Context, opts ...Option) (*Client, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	ep, err := ResolveEndpoint(Config{Host: o.host, Context: o.contextName, TLS: o.tls,
		Insecure: o.insecure})
	if err != nil {
		return nil, err
	}
	if ep.TLS != nil {
		opts = append(opts, WithTLS(*ep.TLS))
	}
	return Dial(ctx, ep.Host, opts...)
}
