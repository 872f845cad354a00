package arm

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestCheckNextLink(t *testing.T) {
	rm, _ := url.Parse("https://arm.example.test:8443/")
	const sub = "11111111-2222-3333-4444-555555555555"
	good := "https://arm.example.test:8443/subscriptions/" + sub + "/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01&$top=10&$skiptoken=abc%3D%3D"
	t.Run("a continuation of the list is accepted", func(t *testing.T) {
		u, err := CheckNextLink(rm, KindVaults, sub, good)
		if err != nil {
			t.Fatal(err)
		}
		if u.Query().Get("$skiptoken") != "abc==" {
			t.Fatalf("parsed %v", u)
		}
	})
	t.Run("host and path compare case-insensitively", func(t *testing.T) {
		if _, err := CheckNextLink(rm, KindVaults, sub, strings.Replace(strings.Replace(good, "arm.example", "ARM.Example", 1), "Microsoft.KeyVault", "microsoft.keyvault", 1)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the default port matches an explicit 443", func(t *testing.T) {
		rm443, _ := url.Parse("https://management.azure.com/")
		if _, err := CheckNextLink(rm443, KindManagedHSMs, sub, "https://management.azure.com:443/subscriptions/"+sub+"/providers/Microsoft.KeyVault/managedHSMs?$skiptoken=x"); err != nil {
			t.Fatal(err)
		}
	})
	for _, c := range []struct{ name, link string }{
		{"another host", strings.Replace(good, "arm.example.test", "evil.example.test", 1)},
		{"a host that merely ends like it", strings.Replace(good, "arm.example.test", "arm.example.test.evil.test", 1)},
		{"another port", strings.Replace(good, ":8443", ":9443", 1)},
		{"plain http", strings.Replace(good, "https://", "http://", 1)},
		{"credentials", strings.Replace(good, "https://", "https://user:pw@", 1)},
		{"another subscription", strings.Replace(good, sub, "99999999-2222-3333-4444-555555555555", 1)},
		{"another resource type", strings.Replace(good, "Microsoft.KeyVault/vaults", "Microsoft.KeyVault/managedHSMs", 1)},
		{"a deeper path", strings.Replace(good, "/vaults?", "/vaults/v1/secrets?", 1)},
		{"a dot-dot path", strings.Replace(good, "/providers/", "/x/../providers/", 1)},
		{"an escaped slash", strings.Replace(good, "/vaults?", "%2Fvaults?", 1)},
		{"a fragment", good + "#x"},
		{"not a URL", "%zz"},
		{"a relative link", "/subscriptions/" + sub + "/providers/Microsoft.KeyVault/vaults"},
		{"too long", good + strings.Repeat("a", MaxNextLinkLen)},
	} {
		t.Run("refuses "+c.name, func(t *testing.T) {
			_, err := CheckNextLink(rm, KindVaults, sub, c.link)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.HasPrefix(err.Error(), "nextLink ") || strings.Contains(err.Error(), "evil") {
				t.Errorf("message %q should name the field and not echo the value", err)
			}
		})
	}
	t.Run("a resource manager under a path keeps its prefix", func(t *testing.T) {
		rmp, _ := url.Parse("https://emu.test/arm/")
		if _, err := CheckNextLink(rmp, KindVaults, sub, "https://emu.test/arm/subscriptions/"+sub+"/providers/Microsoft.KeyVault/vaults?x=1"); err != nil {
			t.Fatal(err)
		}
		if _, err := CheckNextLink(rmp, KindVaults, sub, "https://emu.test/subscriptions/"+sub+"/providers/Microsoft.KeyVault/vaults?x=1"); !errors.Is(err, ErrInvalid) {
			t.Fatalf("without the prefix: err = %v", err)
		}
	})
}

func TestWithTop(t *testing.T) {
	u, _ := url.Parse("https://arm.test/subscriptions/s/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01&%24top=10&$skiptoken=a%2Bb%3D&$top=3")
	got := withTop(u, 25)
	want := "https://arm.test/subscriptions/s/providers/Microsoft.KeyVault/vaults?api-version=2024-11-01&$skiptoken=a%2Bb%3D&$top=25"
	if got != want {
		t.Fatalf("withTop = %s\nwant      %s", got, want)
	}
	u, _ = url.Parse("https://arm.test/x")
	if got := withTop(u, 5); got != "https://arm.test/x?$top=5" {
		t.Fatalf("without a query: %s", got)
	}
}

func TestOneLine(t *testing.T) {
	if got := oneLine("  first line\r\nsecond  "); got != "first line" {
		t.Fatalf("oneLine = %q", got)
	}
	long := strings.Repeat("é", MaxMessageLen)
	got := oneLine(long)
	if len(got) > MaxMessageLen+len("…") || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "é") {
		t.Fatalf("oneLine of a long message: %d bytes", len(got))
	}
	for _, r := range strings.TrimSuffix(got, "…") {
		if r != 'é' {
			t.Fatalf("cut inside a rune: %q", got)
		}
	}
}
