package arm

import (
	"net/url"
	"strconv"
	"strings"
)

// MaxNextLinkLen bounds a nextLink a client sends back.
const MaxNextLinkLen = 8192

// Kind is the ARM resource type a discovery lists.
type Kind string

// The kinds akvsync discovers.
const (
	// KindVaults are Key Vaults.
	KindVaults Kind = "Microsoft.KeyVault/vaults"
	// KindManagedHSMs are Managed HSM pools.
	KindManagedHSMs Kind = "Microsoft.KeyVault/managedHSMs"
)

// Valid reports whether k is one of the kinds.
func (k Kind) Valid() bool { return k == KindVaults || k == KindManagedHSMs }

// listPath is the ARM path of the kind's list in a subscription.
func (k Kind) listPath(subscriptionID string) string {
	return "/subscriptions/" + subscriptionID + "/providers/" + string(k)
}

// CheckNextLink checks that nextLink continues the list of kind in
// subscriptionID on the resource manager endpoint rm, and returns it
// parsed. It must be an https URL on rm's host and port, with rm's path
// followed by the list's path (case-insensitively, as ARM treats paths),
// and no credentials or fragment. Anything else is refused with
// [ErrInvalid] before a request is made: the connection's token must not
// go to another host, nor read another resource.
func CheckNextLink(rm *url.URL, kind Kind, subscriptionID, nextLink string) (*url.URL, error) {
	bad := func(why string) error {
		// The value is not echoed: it is the client's and may be long.
		return invalidf("nextLink %s; pass the nextLink of the previous answer unchanged", why)
	}
	if len(nextLink) > MaxNextLinkLen {
		return nil, bad("is longer than " + strconv.Itoa(MaxNextLinkLen) + " bytes")
	}
	u, err := url.Parse(nextLink)
	if err != nil || u.Opaque != "" {
		return nil, bad("is not a URL")
	}
	if u.Scheme != "https" || u.User != nil || u.Fragment != "" {
		return nil, bad("must be an https URL without credentials or fragment")
	}
	if !sameHost(u, rm) {
		return nil, bad("does not point at the connection's resource manager " + rm.Host)
	}
	want := strings.TrimSuffix(rm.Path, "/") + kind.listPath(subscriptionID)
	if !strings.EqualFold(strings.TrimSuffix(u.Path, "/"), want) || (u.RawPath != "" && u.RawPath != u.Path) {
		return nil, bad("is not a continuation of the " + string(kind) + " list of subscription " + subscriptionID)
	}
	return u, nil
}

// sameHost compares host names (case-insensitively) and ports (443 when
// absent).
func sameHost(a, b *url.URL) bool {
	port := func(u *url.URL) string {
		if p := u.Port(); p != "" {
			return p
		}
		return "443"
	}
	return strings.EqualFold(strings.TrimSuffix(a.Hostname(), "."), strings.TrimSuffix(b.Hostname(), ".")) && port(a) == port(b)
}

// withTop returns u's string with its $top parameter set to top, keeping
// every other parameter byte for byte (a skip token is opaque).
func withTop(u *url.URL, top int) string {
	var parts []string
	if u.RawQuery != "" {
		for _, p := range strings.Split(u.RawQuery, "&") {
			name, _, _ := strings.Cut(p, "=")
			if n, err := url.QueryUnescape(name); err == nil && n == "$top" {
				continue
			}
			parts = append(parts, p)
		}
	}
	parts = append(parts, "$top="+strconv.Itoa(top))
	c := *u
	c.RawQuery = strings.Join(parts, "&")
	c.ForceQuery = false
	return c.String()
}
