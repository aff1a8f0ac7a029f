package netguard_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mcpidp/mcpidp/internal/netguard"
)

// fakeResolver answers from a fixed table and counts lookups.
type fakeResolver struct {
	hosts map[string][]string
	calls atomic.Int64
}

func (r *fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	r.calls.Add(1)
	ips, ok := r.hosts[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	out := make([]net.IPAddr, len(ips))
	for i, ip := range ips {
		out[i] = net.IPAddr{IP: net.ParseIP(ip)}
	}
	return out, nil
}

// countingServer is a real loopback server that records how often it was hit.
type countingServer struct {
	*httptest.Server
	hits atomic.Int64
}

func startServer(t *testing.T, handler http.HandlerFunc) *countingServer {
	t.Helper()
	s := &countingServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		handler(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func okHandler(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") }

func (s *countingServer) addrPort(t *testing.T) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s.Listener.Addr().String())
	require.NoError(t, err)
	return ap
}

func (s *countingServer) port(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(int(s.addrPort(t).Port()))
}

// allowOnly returns an AllowFunc that lets exactly one destination through.
func allowOnly(dst netip.AddrPort) func(netip.AddrPort) bool {
	return func(candidate netip.AddrPort) bool { return candidate == dst }
}

func get(t *testing.T, client *http.Client, rawURL string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	require.NoError(t, err)
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body), nil
}

func TestClientRefusesLocalDestinations(t *testing.T) {
	t.Parallel()

	server := startServer(t, okHandler)
	port := server.port(t)
	client := netguard.New(netguard.Config{}).Client(5 * time.Second)

	for _, rawURL := range []string{
		"http://127.0.0.1:" + port + "/",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:" + port + "/",
		"http://localhost:" + port + "/",
		"http://2130706433:" + port + "/",   // 127.0.0.1 as one decimal number
		"http://0x7f.1:" + port + "/",       // 127.0.0.1 in hex, two parts
		"http://017700000001:" + port + "/", // 127.0.0.1 in octal
		"http://[::ffff:127.0.0.1]:" + port + "/",
		"http://0.0.0.0:" + port + "/",
		"http://10.1.2.3/",
		"http://[fd00:ec2::254]/",
	} {
		t.Run(rawURL, func(t *testing.T) {
			t.Parallel()
			_, err := get(t, client, rawURL)
			require.ErrorIs(t, err, netguard.ErrBlocked)
		})
	}
	t.Cleanup(func() { require.Zero(t, server.hits.Load(), "a blocked request reached the server") })
}

func TestClientAllowPrivateNetworks(t *testing.T) {
	t.Parallel()

	server := startServer(t, okHandler)
	client := netguard.New(netguard.Config{AllowPrivateNetworks: true}).Client(5 * time.Second)

	body, err := get(t, client, "http://localhost:"+server.port(t)+"/")
	require.NoError(t, err)
	require.Equal(t, "ok", body)
	require.Equal(t, int64(1), server.hits.Load())
}

func TestClientAllowFuncAdmitsOnlyThatDestination(t *testing.T) {
	t.Parallel()

	allowed := startServer(t, okHandler)
	other := startServer(t, okHandler)
	client := netguard.New(netguard.Config{AllowFunc: allowOnly(allowed.addrPort(t))}).Client(5 * time.Second)

	body, err := get(t, client, allowed.URL)
	require.NoError(t, err)
	require.Equal(t, "ok", body)

	_, err = get(t, client, other.URL)
	require.ErrorIs(t, err, netguard.ErrBlocked)
	require.Zero(t, other.hits.Load())
}

func TestClientRedirects(t *testing.T) {
	t.Parallel()

	// setup starts the first hop as "public.test", the one destination the
	// guard admits, and returns a client and the URL that reaches it.
	setup := func(t *testing.T, firstHop *countingServer) (*http.Client, string) {
		t.Helper()
		resolver := &fakeResolver{hosts: map[string][]string{
			"public.test": {"127.0.0.1"},
			"localhost":   {"127.0.0.1", "::1"},
		}}
		guard := netguard.New(netguard.Config{
			Resolver:  resolver,
			AllowFunc: allowOnly(firstHop.addrPort(t)),
		})
		return guard.Client(5 * time.Second), "http://public.test:" + firstHop.port(t) + "/"
	}

	t.Run("ToBlockedAddress", func(t *testing.T) {
		t.Parallel()

		internal := startServer(t, okHandler)
		public := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, internal.URL+"/secret", http.StatusFound)
		})
		client, startURL := setup(t, public)

		_, err := get(t, client, startURL)
		require.ErrorIs(t, err, netguard.ErrBlocked)
		require.Equal(t, int64(1), public.hits.Load())
		require.Zero(t, internal.hits.Load())
	})

	t.Run("ToBlockedHostName", func(t *testing.T) {
		t.Parallel()

		internal := startServer(t, okHandler)
		public := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://localhost:"+internal.port(t)+"/", http.StatusTemporaryRedirect)
		})
		client, startURL := setup(t, public)

		_, err := get(t, client, startURL)
		require.ErrorIs(t, err, netguard.ErrBlocked)
		require.Zero(t, internal.hits.Load())
	})

	t.Run("WithinAllowedDestination", func(t *testing.T) {
		t.Parallel()

		var server *countingServer
		server = startServer(t, func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/start" {
				http.Redirect(w, r, "/end", http.StatusFound)
				return
			}
			_, _ = io.WriteString(w, "end")
		})
		client, startURL := setup(t, server)

		body, err := get(t, client, startURL+"start")
		require.NoError(t, err)
		require.Equal(t, "end", body)
		require.Equal(t, int64(2), server.hits.Load())
	})

	t.Run("ToOtherScheme", func(t *testing.T) {
		t.Parallel()

		server := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		})
		client, startURL := setup(t, server)

		_, err := get(t, client, startURL)
		require.ErrorContains(t, err, "only http and https are allowed")
	})

	t.Run("TooMany", func(t *testing.T) {
		t.Parallel()

		server := startServer(t, func(w http.ResponseWriter, r *http.Request) {
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			http.Redirect(w, r, fmt.Sprintf("/?n=%d", n+1), http.StatusFound)
		})
		client, startURL := setup(t, server)

		_, err := get(t, client, startURL)
		require.ErrorContains(t, err, "stopped after 10 redirects")
		require.Equal(t, int64(netguard.MaxRedirects), server.hits.Load())
	})
}

func TestDialContext(t *testing.T) {
	t.Parallel()

	t.Run("RefusesMixedAnswers", func(t *testing.T) {
		t.Parallel()

		server := startServer(t, okHandler)
		resolver := &fakeResolver{hosts: map[string][]string{"mixed.test": {"127.0.0.1", "10.0.0.1"}}}
		guard := netguard.New(netguard.Config{Resolver: resolver, AllowFunc: allowOnly(server.addrPort(t))})

		_, err := guard.DialContext(t.Context(), "tcp", "mixed.test:"+server.port(t))
		require.ErrorIs(t, err, netguard.ErrBlocked)
		require.ErrorContains(t, err, `host "mixed.test" resolves to 10.0.0.1 (private)`)
	})

	t.Run("ResolvesOnceAndDialsCheckedAddress", func(t *testing.T) {
		t.Parallel()

		server := startServer(t, okHandler)
		resolver := &fakeResolver{hosts: map[string][]string{"public.test": {"127.0.0.1"}}}
		guard := netguard.New(netguard.Config{Resolver: resolver, AllowFunc: allowOnly(server.addrPort(t))})

		conn, err := guard.DialContext(t.Context(), "tcp", "public.test:"+server.port(t))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		require.Equal(t, server.Listener.Addr().String(), conn.RemoteAddr().String())
		require.Equal(t, int64(1), resolver.calls.Load())
	})

	t.Run("LiteralIPSkipsResolver", func(t *testing.T) {
		t.Parallel()

		resolver := &fakeResolver{}
		guard := netguard.New(netguard.Config{Resolver: resolver})

		_, err := guard.DialContext(t.Context(), "tcp", "[::1]:80")
		require.ErrorIs(t, err, netguard.ErrBlocked)
		require.ErrorContains(t, err, "::1 (loopback)")
		require.Zero(t, resolver.calls.Load())
	})

	t.Run("ResolverError", func(t *testing.T) {
		t.Parallel()

		guard := netguard.New(netguard.Config{Resolver: &fakeResolver{}})

		_, err := guard.DialContext(t.Context(), "tcp", "missing.test:80")
		var dnsErr *net.DNSError
		require.ErrorAs(t, err, &dnsErr)
		require.NotErrorIs(t, err, netguard.ErrBlocked)
	})

	t.Run("OnlyTCP", func(t *testing.T) {
		t.Parallel()

		guard := netguard.New(netguard.Config{AllowPrivateNetworks: true})

		_, err := guard.DialContext(t.Context(), "udp", "127.0.0.1:53")
		require.ErrorContains(t, err, `network "udp" is not supported`)
	})

	t.Run("FamilyFilter", func(t *testing.T) {
		t.Parallel()

		resolver := &fakeResolver{hosts: map[string][]string{"v4only.test": {"127.0.0.1"}}}
		guard := netguard.New(netguard.Config{Resolver: resolver, AllowPrivateNetworks: true})

		_, err := guard.DialContext(t.Context(), "tcp6", "v4only.test:80")
		require.ErrorContains(t, err, `host "v4only.test" has no tcp6 addresses`)
	})
}

func TestCheckURL(t *testing.T) {
	t.Parallel()

	resolver := &fakeResolver{hosts: map[string][]string{
		"public.test":   {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"},
		"internal.test": {"192.168.1.10"},
	}}
	guard := netguard.New(netguard.Config{Resolver: resolver})

	u, err := guard.CheckURL(t.Context(), "https://public.test/mcp")
	require.NoError(t, err)
	require.Equal(t, "public.test", u.Host)

	_, err = guard.CheckURL(t.Context(), "https://internal.test/mcp")
	require.ErrorIs(t, err, netguard.ErrBlocked)
	require.ErrorContains(t, err, `URL host "internal.test" resolves to 192.168.1.10 (private)`)

	_, err = guard.CheckURL(t.Context(), "ftp://public.test/")
	require.ErrorContains(t, err, "scheme must be http or https")

	allowAll := netguard.New(netguard.Config{Resolver: resolver, AllowPrivateNetworks: true})
	_, err = allowAll.CheckURL(t.Context(), "https://internal.test/mcp")
	require.NoError(t, err)
}

func TestValidateURL(t *testing.T) {
	t.Parallel()

	for _, raw := range []string{
		"https://mcp.notion.com/mcp",
		"http://example.com:8080/path?q=1#frag",
		"HTTPS://Example.COM/",
		"https://[2606:4700::1111]/",
		"http://127.0.0.1/", // syntactically fine; the dialer blocks it
	} {
		t.Run("Accepts/"+raw, func(t *testing.T) {
			t.Parallel()
			u, err := netguard.ValidateURL(raw)
			require.NoError(t, err)
			require.Contains(t, []string{"http", "https"}, u.Scheme)
		})
	}

	for _, tt := range []struct {
		raw     string
		wantErr string
	}{
		{"", "URL is empty"},
		{"ftp://example.com/file", `URL scheme must be http or https, not "ftp"`},
		{"file:///etc/passwd", `not "file"`},
		{"javascript:alert(1)", `not "javascript"`},
		{"/relative/path", "URL must be absolute"},
		{"example.com/mcp", "URL must be absolute"},
		{"//example.com/mcp", "URL must be absolute"},
		{"https://", "URL must have a host"},
		{"https:///path", "URL must have a host"},
		{"https:example.com", "URL must have a host"},
		{"https://:443/", "URL must have a host"},
		{"https://user:pass@example.com/", "must not contain a user name or password"},
		{"https://token@example.com/", "must not contain a user name or password"},
		{"https://example.com:port/", "URL is not valid"},
		{"https://[::1/", "URL is not valid"},
		{"http://1.2.3.4.5/", "looks like an IPv4 address but is not a valid one"},
		{"http://256.1.1.1/", "looks like an IPv4 address but is not a valid one"},
	} {
		t.Run("Rejects/"+tt.raw, func(t *testing.T) {
			t.Parallel()
			u, err := netguard.ValidateURL(tt.raw)
			require.ErrorContains(t, err, tt.wantErr)
			require.Nil(t, u)
		})
	}
}

func TestIsBlockedAddr(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		addr    string
		blocked bool
	}{
		// Public.
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"93.184.215.14", false},
		{"100.63.255.255", false},
		{"100.128.0.0", false},
		{"172.15.255.255", false},
		{"172.32.0.0", false},
		{"192.0.1.1", false},
		{"198.17.255.255", false},
		{"198.20.0.0", false},
		{"223.255.255.255", false},
		{"2606:4700:4700::1111", false},
		{"2001:4860:4860::8888", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", false},  // 6to4 of 8.8.8.8

		// IPv4 special purpose.
		{"0.0.0.0", true},
		{"0.1.2.3", true},
		{"10.0.0.1", true},
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"169.254.169.254", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.0.0.192", true},
		{"192.0.2.1", true},
		{"192.168.1.1", true},
		{"198.18.0.1", true},
		{"198.19.255.255", true},
		{"198.51.100.1", true},
		{"203.0.113.1", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"240.0.0.1", true},
		{"255.255.255.255", true},

		// IPv6 special purpose.
		{"::", true},
		{"::1", true},
		{"fc00::1", true},
		{"fd00:ec2::254", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		{"fec0::1", true},
		{"ff02::1", true},
		{"100::1", true},
		{"64:ff9b:1::1", true},
		{"2001::1", true},
		{"2001:db8::1", true},
		{"3fff::1", true},
		{"5f00::1", true},

		// IPv4 embedded in IPv6.
		{"::ffff:127.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:10.0.0.1", true},
		{"::127.0.0.1", true}, // IPv4-compatible
		{"::10.0.0.1", true},
		{"64:ff9b::7f00:1", true},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", true}, // NAT64 of 169.254.169.254
		{"2002:7f00:1::1", true},     // 6to4 of 127.0.0.1
		{"2002:a00:1::", true},       // 6to4 of 10.0.0.1
	} {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.blocked, netguard.IsBlockedAddr(netip.MustParseAddr(tt.addr)))
		})
	}

	t.Run("ZeroAddr", func(t *testing.T) {
		t.Parallel()
		require.True(t, netguard.IsBlockedAddr(netip.Addr{}))
	})
}

func TestTransportIgnoresProxyEnvironment(t *testing.T) {
	t.Parallel()

	// A proxy from HTTP_PROXY would resolve and connect for us, unchecked.
	transport := netguard.New(netguard.Config{}).Transport()
	require.Nil(t, transport.Proxy)
}
