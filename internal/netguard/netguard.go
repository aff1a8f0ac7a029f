// Package netguard owns outbound connections to URLs that callers supply
// (MCP servers, the OAuth metadata and endpoints they lead to, webhooks,
// authorization callbacks). Its dialer resolves a host once, refuses the
// connection if any resolved address is loopback, private, link-local, CGNAT,
// cloud metadata or otherwise not globally reachable, and then dials exactly
// the address it checked, so DNS rebinding cannot slip a second answer in
// between. HTTP clients built here ignore proxy environment variables and
// re-check every redirect hop, because each hop dials through the same
// dialer.
package netguard

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"syscall"
	"time"
)

// ErrBlocked is wrapped by every error that refuses a destination because of
// its address, so callers can tell it apart from ordinary network failures
// with errors.Is and answer with a 4xx that says what to fix.
var ErrBlocked = errors.New("destination address is not publicly routable; set MCPIDP_ALLOW_PRIVATE_NETWORKS=true to allow private and local networks")

// DefaultDialTimeout bounds one TCP connection attempt when
// Config.DialTimeout is zero.
const DefaultDialTimeout = 10 * time.Second

// MaxRedirects is how many redirects a Client follows before giving up.
const MaxRedirects = 10

// Resolver looks up the addresses of a host name. *net.Resolver implements
// it.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// Config configures a Guard. The zero value is the safe production setting.
type Config struct {
	// AllowPrivateNetworks turns address checks off entirely, for
	// deployments whose MCP servers or webhooks live on a private network
	// (MCPIDP_ALLOW_PRIVATE_NETWORKS). Connections still go to the address
	// that was resolved, and proxies are still ignored.
	AllowPrivateNetworks bool

	// AllowFunc, if set, is asked about each destination that would
	// otherwise be blocked; returning true lets that one address and port
	// through. It exists so tests can start a real server on loopback and
	// still exercise the blocking of every other local address; production
	// code leaves it nil.
	AllowFunc func(dst netip.AddrPort) bool

	// Resolver resolves host names. Defaults to net.DefaultResolver.
	Resolver Resolver

	// DialTimeout bounds each TCP connection attempt. Defaults to
	// DefaultDialTimeout.
	DialTimeout time.Duration
}

// Guard dials caller-supplied destinations safely. It is safe for
// concurrent use.
type Guard struct {
	allowPrivate bool
	allowFunc    func(netip.AddrPort) bool
	resolver     Resolver
	dialer       *net.Dialer
}

// New returns a Guard for cfg, filling in defaults.
func New(cfg Config) *Guard {
	g := &Guard{
		allowPrivate: cfg.AllowPrivateNetworks,
		allowFunc:    cfg.AllowFunc,
		resolver:     cfg.Resolver,
	}
	if g.resolver == nil {
		g.resolver = net.DefaultResolver
	}
	timeout := cfg.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	g.dialer = &net.Dialer{
		Timeout:   timeout,
		KeepAlive: 30 * time.Second,
		// A second check on the socket address itself, just before
		// connect(2): whatever path an address took to get here, a blocked
		// one never gets a packet.
		ControlContext: g.control,
	}
	return g
}

// DialContext connects to address ("host:port") over TCP. It resolves the
// host once and refuses the whole connection if any of the addresses is
// blocked, rather than quietly skipping to an allowed one: a name that
// mixes public and internal answers is either misconfigured or an attack,
// and failing closed gives a clear error either way. It then tries the
// resolved addresses in order, dialing each by IP so no second lookup can
// return something different. Errors for blocked addresses wrap ErrBlocked.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("netguard: network %q is not supported, only tcp", network)
	}
	host, portStr, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("netguard: invalid address %q: %w", address, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("netguard: invalid port in address %q: %w", address, err)
	}

	addrs, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	addrs = filterFamily(network, addrs)
	if len(addrs) == 0 {
		return nil, fmt.Errorf("netguard: host %q has no %s addresses", host, network)
	}

	dsts := make([]netip.AddrPort, len(addrs))
	for i, a := range addrs {
		dsts[i] = netip.AddrPortFrom(a, uint16(port))
		if err := g.check(dsts[i]); err != nil {
			if literal := a.WithZone("").String(); literal != host {
				return nil, fmt.Errorf("netguard: host %q resolves to %w", host, err)
			}
			return nil, fmt.Errorf("netguard: %w", err)
		}
	}

	var firstErr error
	for _, dst := range dsts {
		conn, err := g.dialer.DialContext(ctx, network, dst.String())
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// Transport returns a new *http.Transport whose every connection goes
// through DialContext. It never uses a proxy: a proxy would resolve and
// connect on our behalf, bypassing the checks. Each call returns a separate
// connection pool, so build one per long-lived component and reuse it.
func (g *Guard) Transport() *http.Transport {
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		// No ResponseHeaderTimeout: an MCP tool call may legitimately take
		// minutes before its response headers arrive. Callers bound whole
		// requests with a context or Client timeout instead.
	}
}

// Client returns an *http.Client on a new Transport. timeout bounds each
// request including reading the body (zero means no limit, as in
// http.Client). It follows at most MaxRedirects redirects and only to http
// and https URLs; every hop dials through DialContext, so a redirect to a
// blocked address fails with ErrBlocked like a direct request would.
func (g *Guard) Client(timeout time.Duration) *http.Client {
	return &http.Client{
		Transport:     g.Transport(),
		Timeout:       timeout,
		CheckRedirect: checkRedirect,
	}
}

// CheckURL is ValidateURL followed by resolving the host and checking its
// addresses, for rejecting a caller's URL with a 4xx when it is submitted
// rather than when it is first fetched. The fetch is still checked: DNS may
// answer differently later.
func (g *Guard) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := ValidateURL(raw)
	if err != nil {
		return nil, err
	}
	port := u.Port()
	switch {
	case port != "":
	case u.Scheme == "https":
		port = "443"
	default:
		port = "80"
	}
	portNum, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("URL port %q is not valid", port)
	}
	addrs, err := g.resolve(ctx, u.Hostname())
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if err := g.check(netip.AddrPortFrom(a, uint16(portNum))); err != nil {
			return nil, fmt.Errorf("URL host %q resolves to %w", u.Hostname(), err)
		}
	}
	return u, nil
}

// ValidateURL checks that raw is something a caller may ask us to fetch: an
// absolute http or https URL with a host and without user name or password.
// It does not resolve anything (see Guard.CheckURL). Error messages are
// meant for the caller and say what to fix.
func ValidateURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("URL is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var urlErr *url.Error
		if errors.As(err, &urlErr) {
			err = urlErr.Err
		}
		return nil, fmt.Errorf("URL is not valid: %w", err)
	}
	if u.Scheme == "" {
		return nil, errors.New("URL must be absolute, starting with https:// or http://")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("URL scheme must be http or https, not %q", u.Scheme)
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, errors.New("URL must have a host, as in https://example.com/path")
	}
	if u.User != nil {
		return nil, errors.New("URL must not contain a user name or password; send credentials in headers instead")
	}
	if _, isIP, err := parseHostAddr(u.Hostname()); isIP && err != nil {
		return nil, fmt.Errorf("URL host is not valid: %w", err)
	}
	return u, nil
}

// resolve returns the addresses of host, without a lookup when host is an
// IP literal.
func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if host == "" {
		return nil, errors.New("netguard: empty host")
	}
	addr, isIP, err := parseHostAddr(host)
	if err != nil {
		return nil, fmt.Errorf("netguard: %w", err)
	}
	if isIP {
		return []netip.Addr{addr}, nil
	}
	ipAddrs, err := g.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("netguard: resolving host %q: %w", host, err)
	}
	addrs := make([]netip.Addr, 0, len(ipAddrs))
	for _, ia := range ipAddrs {
		a, ok := netip.AddrFromSlice(ia.IP)
		if !ok {
			return nil, fmt.Errorf("netguard: resolver returned an invalid address for host %q", host)
		}
		addrs = append(addrs, a.Unmap().WithZone(ia.Zone))
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("netguard: host %q has no addresses", host)
	}
	return addrs, nil
}

// check returns an error wrapping ErrBlocked if dst may not be dialed.
func (g *Guard) check(dst netip.AddrPort) error {
	if g.allowPrivate {
		return nil
	}
	reason := blockReason(dst.Addr())
	if reason == "" {
		return nil
	}
	if g.allowFunc != nil && g.allowFunc(dst) {
		return nil
	}
	return fmt.Errorf("%s (%s): %w", dst.Addr(), reason, ErrBlocked)
}

// control is the net.Dialer hook that re-checks the address about to be
// connected to.
func (g *Guard) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	dst, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("netguard: unexpected socket address %q: %w", address, err)
	}
	if err := g.check(dst); err != nil {
		return fmt.Errorf("netguard: %w", err)
	}
	return nil
}

func filterFamily(network string, addrs []netip.Addr) []netip.Addr {
	if network == "tcp" {
		return addrs
	}
	var out []netip.Addr
	for _, a := range addrs {
		if a.Is4() == (network == "tcp4") {
			out = append(out, a)
		}
	}
	return out
}

func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= MaxRedirects {
		return fmt.Errorf("stopped after %d redirects", MaxRedirects)
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing redirect to %q: only http and https are allowed", req.URL.Scheme)
	}
	return nil
}
