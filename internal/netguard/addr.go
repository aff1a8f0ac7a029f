package netguard

import (
	"net/netip"
	"strconv"
	"strings"
)

// IsBlockedAddr reports whether ip is an address that caller-supplied URLs
// must not reach unless private networks are explicitly allowed: anything
// that is not globally reachable unicast (loopback, private, link-local,
// CGNAT, multicast, reserved, documentation ranges…), and any IPv6 address
// that embeds such an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64,
// 6to4). The invalid zero netip.Addr is blocked.
func IsBlockedAddr(ip netip.Addr) bool {
	return blockReason(ip) != ""
}

// blockedRange is a prefix that is never a valid destination, with the word
// used in error messages.
type blockedRange struct {
	prefix netip.Prefix
	reason string
}

// The tables below are read-only.

// blockedIPv4 lists the IANA special-purpose IPv4 ranges that are not
// globally reachable, plus multicast and the reserved class E block.
var blockedIPv4 = []blockedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes 255.255.255.255
}

// IPv6 prefixes handled specially. Only global unicast (2000::/3) is allowed
// at all, which already excludes ::1, ::, fc00::/7 (unique local, e.g. the
// AWS metadata address fd00:ec2::254), fe80::/10, fec0::/10, ff00::/8,
// 100::/64 and 64:ff9b:1::/48.
var (
	prefixGlobalUnicast = netip.MustParsePrefix("2000::/3")
	prefixIPv4Compat    = netip.MustParsePrefix("::/96")
	prefixNAT64         = netip.MustParsePrefix("64:ff9b::/96")
	prefix6to4          = netip.MustParsePrefix("2002::/16")
)

// blockedIPv6 lists ranges inside 2000::/3 that are not globally reachable.
var blockedIPv6 = []blockedRange{
	// Teredo embeds an obfuscated IPv4 address and tunnels anywhere.
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:2::/48"), "benchmarking"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
}

// blockReason returns why ip is blocked ("loopback", "private"…), or "" if
// it is an ordinary public address.
func blockReason(ip netip.Addr) string {
	if !ip.IsValid() {
		return "invalid"
	}
	ip = ip.WithZone("")
	if ip.Is4In6() {
		return embeddedReason(ip.Unmap())
	}
	if ip.Is4() {
		for _, r := range blockedIPv4 {
			if r.prefix.Contains(ip) {
				return r.reason
			}
		}
		return ""
	}

	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsUnspecified():
		return "unspecified"
	case prefixIPv4Compat.Contains(ip):
		return embeddedReason(netip.AddrFrom4([4]byte(ip.AsSlice()[12:16])))
	case prefixNAT64.Contains(ip):
		return embeddedReason(netip.AddrFrom4([4]byte(ip.AsSlice()[12:16])))
	case prefix6to4.Contains(ip):
		return embeddedReason(netip.AddrFrom4([4]byte(ip.AsSlice()[2:6])))
	case ip.IsPrivate():
		return "unique-local"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast():
		return "multicast"
	case !prefixGlobalUnicast.Contains(ip):
		return "reserved"
	}
	for _, r := range blockedIPv6 {
		if r.prefix.Contains(ip) {
			return r.reason
		}
	}
	return ""
}

// embeddedReason checks an IPv4 address carried inside an IPv6 one.
func embeddedReason(v4 netip.Addr) string {
	if reason := blockReason(v4); reason != "" {
		return reason + " IPv4 in IPv6"
	}
	return ""
}

// parseHostAddr returns the address a URL host denotes when it is an IP
// literal: standard IPv4 and IPv6 (optionally with a zone), and the legacy
// IPv4 spellings that browsers and inet_aton accept ("2130706433",
// "0x7f.1", "017700000001"), so that they are checked rather than handed to
// a resolver that might interpret them. ok is false for a host name.
func parseHostAddr(host string) (addr netip.Addr, ok bool, err error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a, true, nil
	}
	return parseLegacyIPv4(host)
}

// parseLegacyIPv4 follows the WHATWG URL host parser: a host whose labels
// are all numbers (decimal, 0-prefixed octal or 0x-prefixed hex) is an IPv4
// address of one to four parts, the last part filling the remaining bytes.
func parseLegacyIPv4(host string) (netip.Addr, bool, error) {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	for _, p := range parts {
		if !isNumericLabel(p) {
			return netip.Addr{}, false, nil
		}
	}
	invalid := &invalidIPv4Error{host: host}
	if len(parts) > 4 {
		return netip.Addr{}, true, invalid
	}
	var value uint64
	for i, p := range parts {
		n, err := parseNumericLabel(p)
		if err != nil {
			return netip.Addr{}, true, invalid
		}
		if i < len(parts)-1 {
			if n > 0xff {
				return netip.Addr{}, true, invalid
			}
			value |= n << (8 * (3 - i))
			continue
		}
		if n >= 1<<(8*(4-i)) {
			return netip.Addr{}, true, invalid
		}
		value |= n
	}
	return netip.AddrFrom4([4]byte{byte(value >> 24), byte(value >> 16), byte(value >> 8), byte(value)}), true, nil
}

func isNumericLabel(s string) bool {
	if s == "" {
		return false
	}
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		for _, c := range s[2:] {
			if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
				return false
			}
		}
		return true
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func parseNumericLabel(s string) (uint64, error) {
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		if len(s) == 2 {
			return 0, nil
		}
		return strconv.ParseUint(s[2:], 16, 32)
	case len(s) > 1 && s[0] == '0':
		return strconv.ParseUint(s[1:], 8, 32)
	default:
		return strconv.ParseUint(s, 10, 32)
	}
}

type invalidIPv4Error struct{ host string }

func (e *invalidIPv4Error) Error() string {
	return "host " + strconv.Quote(e.host) + " looks like an IPv4 address but is not a valid one"
}
