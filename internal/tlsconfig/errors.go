package tlsconfig

import "errors"

// ErrPlainHTTPNotLoopback is returned by [CheckListen] when plain HTTP would
// listen on a non-loopback address without the explicit insecure opt-in.
var ErrPlainHTTPNotLoopback = errors.New("refusing plain HTTP on a non-loopback address: enable TLS, listen on 127.0.0.1/::1/localhost, or explicitly allow insecure HTTP")

// ErrBadAddress is returned (wrapped) by [CheckListen] for an address that is
// not host:port.
var ErrBadAddress = errors.New("invalid listen address")
