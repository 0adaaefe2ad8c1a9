package policy

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mcp-secure/mcp-secure/server/hostname"
)

// cidrHint explains why s is not a CIDR, with a fix that fits what was
// written: the address with /32 or /128, a netmask as a prefix length, a
// wildcard or a range as the CIDR it spells, a host name sent to
// allowed_endpoints.
func cidrHint(s string) string {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return fmt.Sprintf("%q is one address, not a CIDR: write %s/%d", s, a.WithZone(""), a.BitLen())
	}
	if addr, bits, ok := strings.Cut(s, "/"); ok {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			return fmt.Sprintf("%q is not a CIDR: %q is not an IP address", s, addr)
		}
		if m, err := netip.ParseAddr(bits); err == nil && a.Is4() && m.Is4() {
			if n, ok := maskBits(m); ok {
				return fmt.Sprintf("%q is not a CIDR: write the netmask as a prefix length, %s/%d", s, a, n)
			}
			return fmt.Sprintf("%q is not a CIDR: %s is not a netmask", s, bits)
		}
		n, err := strconv.Atoi(bits)
		if err != nil || n < 0 || n > a.BitLen() {
			return fmt.Sprintf("%q is not a CIDR: the prefix length after / is 0-%d for an IPv%d address", s, a.BitLen(), map[bool]int{true: 4, false: 6}[a.Is4()])
		}
		return fmt.Sprintf("%q is not a CIDR (write the prefix length without leading zeros, e.g. %s/%d)", s, a, n)
	}
	if strings.Contains(s, "*") {
		parts := strings.Split(s, ".")
		fixed := 0
		for fixed < len(parts) && parts[fixed] != "*" {
			fixed++
		}
		if len(parts) == 4 && fixed < 4 {
			octets := []string{"0", "0", "0", "0"}
			copy(octets, parts[:fixed])
			if a, err := netip.ParseAddr(strings.Join(octets, ".")); err == nil {
				return fmt.Sprintf("%q is not a CIDR: wildcards are written as a prefix, %s/%d", s, a, fixed*8)
			}
		}
		return fmt.Sprintf("%q is not a CIDR: wildcards are written as a prefix, e.g. 10.1.0.0/16", s)
	}
	if lo, hi, ok := strings.Cut(s, "-"); ok {
		a, errA := netip.ParseAddr(strings.TrimSpace(lo))
		b, errB := netip.ParseAddr(strings.TrimSpace(hi))
		if errA == nil && errB == nil && a.BitLen() == b.BitLen() {
			for bits := a.BitLen(); bits >= 0; bits-- {
				p := netip.PrefixFrom(a, bits).Masked()
				if p.Addr() == a && p.Contains(b) {
					if lastOf(p) == b {
						return fmt.Sprintf("%q is not a CIDR: this range is %s", s, p)
					}
					break
				}
			}
		}
		return fmt.Sprintf("%q is not a CIDR: write a range as one or more CIDRs, e.g. 10.0.0.0/24", s)
	}
	if h := hostname.Normalize(s); hostname.Valid(h) && strings.ContainsAny(h, "abcdefghijklmnopqrstuvwxyz") {
		return fmt.Sprintf("%q is a host name: allowed_ranges takes CIDRs; put hosts in network.allowed_endpoints with their ports", s)
	}
	return fmt.Sprintf("%q is not a CIDR (write 10.0.0.0/8, or 192.0.2.7/32 for one address)", s)
}

// maskBits is the prefix length of a contiguous IPv4 netmask.
func maskBits(m netip.Addr) (int, bool) {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for n < 32 && v&(1<<(31-n)) != 0 {
		n++
	}
	return n, v<<n == 0
}

// lastOf is the last address of p.
func lastOf(p netip.Prefix) netip.Addr {
	a := p.Addr().AsSlice()
	for i := p.Bits(); i < len(a)*8; i++ {
		a[i/8] |= 1 << (7 - i%8)
	}
	last, _ := netip.AddrFromSlice(a)
	return last
}
