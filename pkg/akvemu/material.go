package akvemu

import (
	"crypto/ecdh"
	"encoding/base64"
	"fmt"
	"math/big"
	"math/rand/v2"
	"sync"
)

// Key types (kty) the emulator serves.
const (
	KtyRSA    = "RSA"
	KtyRSAHSM = "RSA-HSM"
	KtyEC     = "EC"
	KtyECHSM  = "EC-HSM"
	KtyOctHSM = "oct-HSM"
)

// Elliptic curves (crv).
const (
	CurveP256  = "P-256"
	CurveP384  = "P-384"
	CurveP521  = "P-521"
	CurveP256K = "P-256K"
)

// Key operations (key_ops).
var (
	rsaDefaultOps = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
	ecDefaultOps  = []string{"sign", "verify"}
	octDefaultOps = []string{"encrypt", "decrypt", "wrapKey", "unwrapKey"}
	validOps      = map[string]bool{"encrypt": true, "decrypt": true, "sign": true, "verify": true, "wrapKey": true, "unwrapKey": true, "import": true, "export": true}
)

// ecPoolSize is the number of public points pregenerated per curve.
const ecPoolSize = 8

// material is the public part of a key, with its JWK fields pre-rendered
// (`,"n":"…","e":"AQAB"` or `,"crv":"P-256","x":"…","y":"…"`; empty for oct-HSM).
type material struct {
	jwk        []byte
	n, e, x, y []byte
	crv        string
	size       int
}

// materialPool holds real public keys per type and size, reused across keys so that
// seeding thousands of keys costs no key generation.
type materialPool struct {
	rsa map[int][]*material
	ec  map[string][]*material
	oct *material
}

var (
	poolOnce sync.Once
	pool     *materialPool
	poolErr  error
)

// sharedPool builds the pool once per process: RSA moduli are embedded, EC points are
// derived deterministically from a fixed seed, so identical seeds give identical JWKs.
func sharedPool() (*materialPool, error) {
	poolOnce.Do(func() { pool, poolErr = buildPool() })
	return pool, poolErr
}

func buildPool() (*materialPool, error) {
	p := &materialPool{rsa: map[int][]*material{}, ec: map[string][]*material{}, oct: &material{size: 256}}
	e := []byte{1, 0, 1}
	for bits, list := range rsaModuli {
		for _, s := range list {
			n, err := base64.RawURLEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("decode embedded modulus: %w", err)
			}
			p.rsa[bits] = append(p.rsa[bits], newRSAMaterial(n, e))
		}
	}
	rng := rand.New(rand.NewPCG(0x616b76656d75, 0x706f6f6c)) // #nosec G404 -- a fixed-seed PRNG so the emulator's fake key pool is reproducible; emulator test data, not secrets
	curves := map[string]ecdh.Curve{CurveP256: ecdh.P256(), CurveP384: ecdh.P384(), CurveP521: ecdh.P521()}
	sizes := map[string]int{CurveP256: 32, CurveP384: 48, CurveP521: 66}
	for _, name := range []string{CurveP256, CurveP384, CurveP521} {
		for len(p.ec[name]) < ecPoolSize {
			b := make([]byte, sizes[name])
			for i := range b {
				b[i] = byte(rng.Uint32()) // #nosec G115 -- keeping the low byte of a random word is the intent
			}
			if name == CurveP521 {
				b[0] &= 1
			}
			priv, err := curves[name].NewPrivateKey(b)
			if err != nil {
				continue // scalar out of range: draw again
			}
			pub := priv.PublicKey().Bytes() // 0x04 || X || Y
			l := (len(pub) - 1) / 2
			p.ec[name] = append(p.ec[name], newECMaterial(name, pub[1:1+l], pub[1+l:]))
		}
	}
	for len(p.ec[CurveP256K]) < ecPoolSize {
		x, y := secp256k1Point(rng)
		p.ec[CurveP256K] = append(p.ec[CurveP256K], newECMaterial(CurveP256K, x, y))
	}
	return p, nil
}

func newRSAMaterial(n, e []byte) *material {
	m := &material{n: n, e: e, size: len(n) * 8}
	m.jwk = append(m.jwk, `,"n":"`...)
	m.jwk = append(m.jwk, b64(n)...)
	m.jwk = append(m.jwk, `","e":"`...)
	m.jwk = append(m.jwk, b64(e)...)
	m.jwk = append(m.jwk, '"')
	return m
}

func newECMaterial(crv string, x, y []byte) *material {
	m := &material{crv: crv, x: x, y: y}
	m.jwk = append(m.jwk, `,"crv":`...)
	m.jwk = appendJSONString(m.jwk, crv)
	m.jwk = append(m.jwk, `,"x":"`...)
	m.jwk = append(m.jwk, b64(x)...)
	m.jwk = append(m.jwk, `","y":"`...)
	m.jwk = append(m.jwk, b64(y)...)
	m.jwk = append(m.jwk, '"')
	return m
}

// pick returns pooled material for the type, size and curve; h selects the entry.
func (p *materialPool) pick(family string, size int, crv string, h uint64) (*material, error) {
	var list []*material
	switch family {
	case KtyRSA:
		list = p.rsa[size]
	case KtyEC:
		list = p.ec[crv]
	case "oct":
		return p.oct, nil
	}
	if len(list) == 0 {
		return nil, badParam(fmt.Sprintf("no key material for %s %d %s", family, size, crv))
	}
	return list[h%uint64(len(list))], nil
}

// secp256k1Point derives a valid public point on secp256k1 (y² = x³ + 7 mod p).
// The curve has cofactor 1, so every point on it is in the prime-order group.
func secp256k1Point(rng *rand.Rand) (x, y []byte) {
	p, _ := new(big.Int).SetString("fffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2f", 16)
	exp := new(big.Int).Add(p, big.NewInt(1))
	exp.Rsh(exp, 2)
	buf := make([]byte, 32)
	for {
		for i := range buf {
			buf[i] = byte(rng.Uint32()) // #nosec G115 -- keeping the low byte of a random word is the intent
		}
		xi := new(big.Int).SetBytes(buf)
		if xi.Cmp(p) >= 0 {
			continue
		}
		rhs := new(big.Int).Exp(xi, big.NewInt(3), p)
		rhs.Add(rhs, big.NewInt(7)).Mod(rhs, p)
		yi := new(big.Int).Exp(rhs, exp, p)
		if new(big.Int).Exp(yi, big.NewInt(2), p).Cmp(rhs) != 0 {
			continue
		}
		return xi.FillBytes(make([]byte, 32)), yi.FillBytes(make([]byte, 32))
	}
}

// keyFamily returns RSA, EC or oct for a kty.
func keyFamily(kty string) string {
	switch kty {
	case KtyRSA, KtyRSAHSM:
		return KtyRSA
	case KtyEC, KtyECHSM:
		return KtyEC
	case KtyOctHSM:
		return "oct"
	}
	return ""
}

func isHSM(kty string) bool { return kty == KtyRSAHSM || kty == KtyECHSM || kty == KtyOctHSM }

func defaultOps(kty string) []string {
	switch keyFamily(kty) {
	case KtyRSA:
		return rsaDefaultOps
	case KtyEC:
		return ecDefaultOps
	default:
		return octDefaultOps
	}
}

func curveSize(crv string) int {
	switch crv {
	case CurveP256, CurveP256K:
		return 256
	case CurveP384:
		return 384
	case CurveP521:
		return 521
	}
	return 0
}
