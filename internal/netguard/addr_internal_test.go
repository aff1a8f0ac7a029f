package netguard

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseHostAddr(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		host    string
		want    string // "" for a host name
		wantErr bool
	}{
		{host: "example.com"},
		{host: "123.example"},
		{host: "0x7f.example"},
		{host: "127.0.0.1", want: "127.0.0.1"},
		{host: "::1", want: "::1"},
		{host: "2130706433", want: "127.0.0.1"},
		{host: "0x7f000001", want: "127.0.0.1"},
		{host: "017700000001", want: "127.0.0.1"},
		{host: "0x7f.1", want: "127.0.0.1"},
		{host: "127.1", want: "127.0.0.1"},
		{host: "10.0.258", want: "10.0.1.2"},
		{host: "0251.0376.0251.0376", want: "169.254.169.254"},
		{host: "0xa9.0xfe.0xa9.0xfe", want: "169.254.169.254"},
		{host: "8.8.8.8.", want: "8.8.8.8"},
		{host: "0", want: "0.0.0.0"},
		{host: "0x", want: "0.0.0.0"},
		{host: "4294967296", wantErr: true},
		{host: "1.2.3.4.5", wantErr: true},
		{host: "1.256.1", wantErr: true},
		{host: "1.2.65536", wantErr: true},
		{host: "09", wantErr: true}, // not octal
	} {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			addr, isIP, err := parseHostAddr(tt.host)
			if tt.wantErr {
				require.True(t, isIP)
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want != "", isIP)
			if isIP {
				require.Equal(t, netip.MustParseAddr(tt.want), addr)
			}
		})
	}
}

// The socket-level check is a second line of defence; it must refuse on its
// own, whatever the resolution step decided.
func TestControlRefusesBlockedSocketAddress(t *testing.T) {
	t.Parallel()

	g := New(Config{})
	require.ErrorIs(t, g.control(t.Context(), "tcp4", "127.0.0.1:80", nil), ErrBlocked)
	require.ErrorIs(t, g.control(t.Context(), "tcp6", "[fe80::1%lo]:80", nil), ErrBlocked)
	require.NoError(t, g.control(t.Context(), "tcp4", "8.8.8.8:443", nil))

	allowed := New(Config{AllowFunc: func(dst netip.AddrPort) bool { return dst == netip.MustParseAddrPort("127.0.0.1:80") }})
	require.NoError(t, allowed.control(t.Context(), "tcp4", "127.0.0.1:80", nil))
	require.ErrorIs(t, allowed.control(t.Context(), "tcp4", "127.0.0.1:81", nil), ErrBlocked)
}
