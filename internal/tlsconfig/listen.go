package tlsconfig

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// CheckListen decides whether the API may listen on addr ("host:port"):
// with TLS always; with plain HTTP only when host is a loopback address
// (127.0.0.0/8, ::1, or "localhost") or insecureHTTP is explicitly set. An
// empty host (":8080") means all interfaces and is not loopback. It returns
// [ErrPlainHTTPNotLoopback] (wrapped, naming addr) when refused, and
// [ErrBadAddress] for an address without a port.
func CheckListen(addr string, tlsOn, insecureHTTP bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w %q: %w", ErrBadAddress, addr, err)
	}
	if tlsOn || insecureHTTP {
		return nil
	}
	if isLoopback(host) {
		return nil
	}
	return fmt.Errorf("listen %q: %w", addr, ErrPlainHTTPNotLoopback)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	return ip.Unmap().IsLoopback()
}
