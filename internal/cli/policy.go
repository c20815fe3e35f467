package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/signet-dev/signet/httpsig"
	"github.com/signet-dev/signet/policy"
)

// newCmdPolicy returns signet policy, which reads the policy file of
// signet serve --config.
func newCmdPolicy(e *Env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Check a gateway policy file, and see which route a request takes",
		Long: "Check the policy file of signet serve --config (routes, upstreams, trusted proxies,\n" +
			"settings), and explain which route a request takes and what it must carry.",
		RunE: needSubcommand,
	}
	cmd.AddCommand(newCmdPolicyCheck(e, nil), newCmdPolicyExplain(e, nil))
	return cmd
}

type policyCheckOptions struct {
	file string
}

func newCmdPolicyCheck(e *Env, runF func(*policyCheckOptions) error) *cobra.Command {
	o := &policyCheckOptions{}
	return &cobra.Command{
		Use:   "check FILE",
		Short: "Check a policy file and print its route table",
		Long: "Check a policy file as signet serve --config would load it, print every problem\n" +
			"with its line and column, and print the route table in the order of precedence.\n" +
			"Exit 0 when the file loads, 1 when it does not.",
		Args: func(_ *cobra.Command, args []string) error {
			switch len(args) {
			case 0:
				return usageErrorf("give the policy file")
			case 1:
				o.file = args[0]
				return nil
			}
			return usageErrorf("unexpected argument %q", args[1])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(o)
			}
			return policyCheckRun(e, o)
		},
	}
}

// errPolicy marks a policy that did not load, whose problems are printed.
var errPolicy = errors.New("the policy does not load")

func policyCheckRun(e *Env, o *policyCheckOptions) error {
	p, err := loadPolicy(e, o.file)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s: ok: %d routes, %d upstreams\n", o.file, len(p.Routes), len(p.Upstreams))
	printWarnings(e, p)
	if p.Settings.UpstreamSigning && p.Settings.GatewayKeys == "" {
		fmt.Fprintf(e.Stderr, "warning: %s: upstream_signing needs the gateway's own keys: gateway_keys: FILE here, or signet serve --gateway-keys FILE\n", o.file)
	}
	fmt.Fprintln(e.Stdout)
	printRoutes(e.Stdout, p)
	fmt.Fprintln(e.Stdout)
	printUpstreams(e.Stdout, p)
	if t := p.Proxies; t != nil {
		fmt.Fprintf(e.Stdout, "\ntrusted proxies: %s from %s", t.Header, joinPrefixes(t))
		if t.Prefix != "" {
			fmt.Fprintf(e.Stdout, ", mounted at %s", t.Prefix)
		}
		fmt.Fprintln(e.Stdout)
	}
	return nil
}

// loadPolicy loads a file, printing its problems on stderr.
func loadPolicy(e *Env, file string) (*policy.Policy, error) {
	p, err := policy.Load(file, policy.Options{})
	var es policy.Errors
	if errors.As(err, &es) {
		for _, pe := range es {
			fmt.Fprintln(e.Stderr, pe.Error())
		}
		return nil, exitError(exitRefused)
	}
	return p, err
}

func printWarnings(e *Env, p *policy.Policy) {
	for _, w := range p.Warnings {
		fmt.Fprintf(e.Stderr, "warning: %s\n", w.Error())
	}
}

func joinPrefixes(t *policy.TrustedProxies) string {
	s := make([]string, len(t.From))
	for i, p := range t.From {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// printRoutes writes the route table in the order of the file, and what
// becomes of a request that matches none.
func printRoutes(w io.Writer, p *policy.Policy) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROUTE\tMATCH\tUPSTREAM\tREQUIRES\tAT")
	for _, r := range p.Routes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Pattern, r.Upstream.Name, requirements(p, r, true), r.Pos)
	}
	if !hasCatchAll(p) {
		fmt.Fprintln(tw, "(none)\tanything else\t-\trefused: 404 no-route\t")
	}
	tw.Flush()
}

func hasCatchAll(p *policy.Policy) bool {
	for _, r := range p.Routes {
		if r.Pattern == "/" {
			return true
		}
	}
	return false
}

// requirements says in one line what a route demands.
func requirements(p *policy.Policy, r *policy.Route, short bool) string {
	if r.Public {
		return "public: no signature"
	}
	parts := []string{"signature"}
	if len(r.Scopes.AllOf)+len(r.Scopes.AnyOf) > 0 {
		parts = append(parts, "scopes "+r.Scopes.String())
	}
	if len(r.Require) > 0 {
		parts = append(parts, "covering "+components(r.Require))
	}
	if len(r.Algorithms) > 0 {
		algs := make([]string, len(r.Algorithms))
		for i, a := range r.Algorithms {
			algs[i] = string(a)
		}
		parts = append(parts, strings.Join(algs, "/"))
	}
	if r.MaxAge != 0 {
		parts = append(parts, "max age "+r.MaxAge.String())
	}
	if r.MaxBody != 0 {
		parts = append(parts, "max body "+policy.FormatSize(r.MaxBody))
	}
	if r.Rate != nil {
		parts = append(parts, "rate "+r.Rate.String())
	}
	if r.Presigned != nil {
		parts = append(parts, fmt.Sprintf("presigned %v", *r.Presigned))
	}
	return strings.Join(parts, "; ")
}

func components(cs []httpsig.Component) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return strings.Join(s, " ")
}

func printUpstreams(w io.Writer, p *policy.Policy) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "UPSTREAM\tURL\tRESPONSE HEADER TIMEOUT\tIDLE CONNS\tMAX CONNS\tAT")
	for _, name := range sortedNames(p.Upstreams) {
		u := p.Upstreams[name]
		timeout := u.ResponseHeaderTimeout
		if timeout == 0 {
			timeout = p.Settings.UpstreamTimeout
		}
		idle := u.MaxIdleConns
		if idle == 0 {
			idle = policy.DefaultMaxIdleConns
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", u.Name, u.URL.Redacted(), orNone(timeout), idle, orUnbounded(u.MaxConns), u.Pos)
	}
	tw.Flush()
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func orNone(d time.Duration) string {
	if d == 0 {
		return "none"
	}
	return d.String()
}

func orUnbounded(n int) string {
	if n == 0 {
		return "unbounded"
	}
	return fmt.Sprint(n)
}

type policyExplainOptions struct {
	config  string
	method  string
	url     *url.URL
	peer    netip.Addr
	headers http.Header
}

func newCmdPolicyExplain(e *Env, runF func(*policyExplainOptions) error) *cobra.Command {
	o := &policyExplainOptions{headers: http.Header{}}
	var headers []string
	var peer string
	cmd := &cobra.Command{
		Use:   "explain --config FILE [--peer ADDR] [-H 'Name: value']... METHOD URL",
		Short: "Say which route a request takes and what it must carry",
		Long: "Say which route of a policy file a request takes and what it must carry: the\n" +
			"signature's scopes and components, and the @authority, @scheme and @path it must\n" +
			"have been made over. URL is the request as it reaches the gateway\n" +
			"(https://api.example.com/v1/orders?x=1). --peer and -H say who sent it, for the\n" +
			"trusted proxies (X-Forwarded-* or Forwarded fields).\n" +
			"Exit 0 when a route takes the request, 1 when the gateway would refuse it before\n" +
			"verifying (no route, an unsafe path, bad forwarding fields) or the file does not load.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageErrorf("give METHOD and URL (explain GET https://api.example.com/v1/orders)")
			}
			o.method = args[0]
			u, err := url.Parse(args[1])
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageErrorf("%q is not an http:// or https:// URL", args[1])
			}
			o.url = u
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.config == "" {
				return usageErrorf("--config is required")
			}
			if o.method != strings.ToUpper(o.method) || o.method == "" {
				return usageErrorf("the method %q: write it in upper case, as it is sent", o.method)
			}
			if peer != "" {
				a, err := netip.ParseAddr(strings.Trim(peer, "[]"))
				if err != nil {
					return usageErrorf("--peer %q is not an IP address", peer)
				}
				o.peer = a
			}
			for _, h := range headers {
				name, value, ok := strings.Cut(h, ":")
				if !ok || strings.TrimSpace(name) == "" {
					return usageErrorf("-H %q is not 'Name: value'", h)
				}
				o.headers.Add(strings.TrimSpace(name), strings.TrimSpace(value))
			}
			if runF != nil {
				return runF(o)
			}
			return policyExplainRun(e, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "the policy `FILE` (required)")
	f.StringVar(&peer, "peer", "", "the `ADDR`ess the request comes from, such as a trusted proxy's 10.0.0.5 (default: a client, not a proxy)")
	f.StringArrayVarP(&headers, "header", "H", nil, "header field `'Name: value'` the request carries; repeat for more")
	return cmd
}

func policyExplainRun(e *Env, o *policyExplainOptions) error {
	p, err := loadPolicy(e, o.config)
	if err != nil {
		return err
	}
	peer := "192.0.2.1:1" // TEST-NET-1: no one's proxy
	if o.peer.IsValid() {
		peer = netip.AddrPortFrom(o.peer, 1).String()
	}
	origin, err := p.Proxies.Origin(peer, o.url.Scheme == "https", o.url.Host, o.headers, p.Settings.Scheme)
	if err != nil {
		return &refusal{string(policy.ReasonInvalidForwarded), strings.TrimPrefix(err.Error(), "policy: ")}
	}
	path := o.url.EscapedPath()
	if path == "" {
		path = "/"
	}
	r, err := p.Match(o.method, origin.Authority, path)
	var te *policy.TargetError
	switch {
	case errors.Is(err, policy.ErrNoRoute):
		return &refusal{string(policy.ReasonNoRoute), fmt.Sprintf("404: no route matches %s %s%s", o.method, origin.Authority, path)}
	case errors.As(err, &te):
		return &refusal{"invalid-target", "400: " + te.Detail}
	case err != nil:
		return err
	}
	w := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "route\t%s (%s)\n", r.Name, r.Pos)
	fmt.Fprintf(w, "match\t%s\n", r.Pattern)
	base := *r.Upstream.URL
	base.Path, base.RawPath, base.RawQuery = "", "", ""
	fmt.Fprintf(w, "upstream\t%s: %s%s%s%s\n", r.Upstream.Name, base.Redacted(), strings.TrimSuffix(r.Upstream.URL.EscapedPath(), "/"), path, query(o.url))
	if r.Public {
		fmt.Fprintln(w, "requires\tnothing: a public route (X-Signet-* fields are removed all the same)")
		w.Flush()
		return nil
	}
	fmt.Fprintf(w, "requires\t%s\n", requirements(p, r, false))
	covers := "@method @authority @path, @query if there is a query, content-type if sent, content-digest if there is a body"
	if len(r.Require) > 0 {
		covers += "; and " + components(r.Require)
	}
	fmt.Fprintf(w, "covers\t%s\n", covers)
	maxAge := r.MaxAge
	if maxAge == 0 {
		maxAge = p.Settings.MaxAge
	}
	fmt.Fprintf(w, "fresh\tcreated at most %s ago, %s ahead; an unused nonce\n", maxAge, p.Settings.MaxSkew)
	maxBody := r.MaxBody
	if maxBody == 0 {
		maxBody = p.Settings.MaxBody
	}
	fmt.Fprintf(w, "body\tat most %s\n", policy.FormatSize(maxBody))
	via := "as received"
	if origin.Forwarded {
		via = "as rebuilt from the trusted proxy's fields"
	}
	fmt.Fprintf(w, "signed over\t@scheme %s, @authority %s, @path %s (%s)\n", origin.Scheme, strings.ToLower(origin.Authority), origin.Prefix+path, via)
	return w.Flush()
}

func query(u *url.URL) string {
	if u.RawQuery == "" && !u.ForceQuery {
		return ""
	}
	return "?" + u.RawQuery
}
