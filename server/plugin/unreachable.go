package plugin

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// Unreachable names, in words safe to show, why a host could not be
// reached: its name did not resolve, the connection was refused or
// reset, the network is unreachable, or TLS failed. "" means none of
// these.
func Unreachable(err error) string {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recordErr tls.RecordHeaderError
	switch {
	case errors.As(err, &dnsErr):
		return "the name did not resolve (offline, or DNS unavailable)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the connection was refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "the connection was reset"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "the network is unreachable (offline?)"
	case errors.As(err, &certErr):
		return "its TLS certificate did not verify"
	case errors.As(err, &recordErr):
		return "it does not speak TLS on that port"
	}
	return ""
}
