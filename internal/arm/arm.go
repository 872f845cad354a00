package arm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/resources/armsubscriptions"

	"github.com/akvsync/akvsync/internal/azure"
)

// Defaults and limits of [Config] and the list calls.
const (
	// MaxTop bounds the page size of [Client.Vaults] (CCKM's maximum).
	MaxTop = 1000
	// DefaultMaxSubscriptions bounds the subscriptions [Client.Subscriptions]
	// returns.
	DefaultMaxSubscriptions = 5000
	// DefaultMaxRetries, DefaultRetryDelay and DefaultMaxRetryDelay are
	// the retry policy of ARM calls (429, 5xx and transport errors, with
	// Retry-After honoured); DefaultTryTimeout bounds one attempt.
	DefaultMaxRetries    = 3
	DefaultRetryDelay    = 800 * time.Millisecond
	DefaultMaxRetryDelay = 30 * time.Second
	DefaultTryTimeout    = 30 * time.Second
	// DeadlineMargin is kept back from a call's deadline: a retry whose
	// wait would end later than the deadline less this margin is not
	// waited for, and the throttled answer is returned instead.
	DeadlineMargin = 500 * time.Millisecond
)

// Config tunes a [Client]. Zero fields take the defaults above.
type Config struct {
	// Retry is azcore's retry policy for ARM calls (defaults
	// DefaultMaxRetries, DefaultRetryDelay, DefaultMaxRetryDelay,
	// DefaultTryTimeout). A Retry-After longer than MaxRetryDelay, or than
	// the time left before the call's deadline, is not waited for: the call
	// fails with [ErrThrottled] and the delay Azure asked for.
	azure.Retry
	// MaxSubscriptions bounds the subscriptions one listing returns.
	MaxSubscriptions int
}

// WithDefaults returns c with zero fields replaced by their defaults.
func (c Config) WithDefaults() Config {
	c.Retry = c.Retry.WithDefaults(azure.Retry{MaxRetries: DefaultMaxRetries, RetryDelay: DefaultRetryDelay,
		MaxRetryDelay: DefaultMaxRetryDelay, TryTimeout: DefaultTryTimeout})
	if c.MaxSubscriptions == 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if !c.Retry.Valid() || c.MaxSubscriptions < 1 {
		return fmt.Errorf("arm: invalid config %+v", c)
	}
	return nil
}

// Client lists subscriptions, vaults and Managed HSM pools through Azure
// Resource Manager. It is safe for concurrent use.
type Client struct {
	f   *azure.Factory
	cfg Config
}

// New returns a client whose credentials and transports come from f.
func New(f *azure.Factory, cfg Config) (*Client, error) {
	if f == nil {
		return nil, fmt.Errorf("arm: nil factory")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Client{f: f, cfg: cfg.WithDefaults()}, nil
}

// subscriptionRE is the shape of a subscription id akvsync accepts (Azure's
// are GUIDs); it is a single path segment and a NATS subject token.
var subscriptionRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z_-]{0,63}$`)

// ValidSubscriptionID reports whether s can be a subscription id.
func ValidSubscriptionID(s string) bool { return subscriptionRE.MatchString(s) }

// withDeadline returns ctx carrying the client's retry policy, with waits
// capped so that a retry never sleeps past ctx's deadline (less
// DeadlineMargin): Azure's Retry-After is honoured when it fits, else the
// throttled answer is returned at once.
func (c *Client) withDeadline(ctx context.Context) context.Context {
	o := c.cfg.Retry.Options()
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl) - DeadlineMargin
		if left < time.Millisecond {
			left = time.Millisecond
		}
		o.MaxRetryDelay = min(o.MaxRetryDelay, left)
		o.RetryDelay = min(o.RetryDelay, o.MaxRetryDelay)
		o.TryTimeout = min(o.TryTimeout, left+DeadlineMargin)
	}
	return policy.WithRetryOptions(ctx, o)
}

// Subscriptions lists the subscriptions conn can see, following ARM's
// nextLinks, up to Config.MaxSubscriptions; truncated reports that more
// exist. Errors wrap [ErrAzure], an azure sentinel (unusable connection)
// or a context error.
func (c *Client) Subscriptions(ctx context.Context, conn azure.Connection) (subs []Subscription, truncated bool, err error) {
	const op = "list subscriptions"
	opts, cred, rm, err := c.f.ARMClientOptions(conn)
	if err != nil {
		return nil, false, err
	}
	client, err := armsubscriptions.NewClient(cred, opts)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", azure.ErrInvalidConnection, err)
	}
	ctx = c.withDeadline(ctx)
	pager := client.NewListPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, false, describe(op, err)
		}
		for _, s := range page.Value {
			if s == nil {
				continue
			}
			if len(subs) == c.cfg.MaxSubscriptions {
				return subs, true, nil
			}
			subs = append(subs, fromSubscription(s))
		}
		if page.NextLink != nil && *page.NextLink != "" {
			// ARM's own links are followed only on its own host.
			u, err := url.Parse(*page.NextLink)
			if err != nil || u.Scheme != "https" || !sameHost(u, rm) {
				return nil, false, &Error{Op: op, Status: 200, Code: "InvalidNextLink", Message: "Azure returned a nextLink outside " + rm.Host}
			}
		}
	}
	return subs, false, nil
}

// Page is one page of vaults or Managed HSM pools.
type Page struct {
	// Vaults are the page's entries, in ARM's order.
	Vaults []Vault
	// NextLink continues the list; "" on the last page.
	NextLink string
}

// Vaults lists one page of at most top resources of kind in the
// subscription: the first page when nextLink is "", else the page
// nextLink points at, which [CheckNextLink] must accept (its $top is set
// to top). Errors wrap [ErrInvalid], [ErrAzure], an azure sentinel or a
// context error.
func (c *Client) Vaults(ctx context.Context, conn azure.Connection, kind Kind, subscriptionID string, top int, nextLink string) (Page, error) {
	switch {
	case !kind.Valid():
		return Page{}, invalidf("unknown resource type %q", kind)
	case !ValidSubscriptionID(subscriptionID):
		return Page{}, invalidf("subscription_id %q is not a valid subscription id", subscriptionID)
	case top < 1 || top > MaxTop:
		return Page{}, invalidf("limit must be 1 to %d", MaxTop)
	}
	opts, cred, rm, err := c.f.ARMClientOptions(conn)
	if err != nil {
		return Page{}, err
	}
	if nextLink != "" {
		u, err := CheckNextLink(rm, kind, subscriptionID, nextLink)
		if err != nil {
			return Page{}, err
		}
		nextLink = withTop(u, top)
	}
	op := "list " + string(kind) + " of subscription " + subscriptionID
	ctx = c.withDeadline(ctx)
	top32 := int32(top)
	var out Page
	switch kind {
	case KindVaults:
		client, err := armkeyvault.NewVaultsClient(subscriptionID, cred, opts)
		if err != nil {
			return Page{}, fmt.Errorf("%w: %w", azure.ErrInvalidConnection, err)
		}
		page, err := onePage(ctx, client.NewListBySubscriptionPager(&armkeyvault.VaultsClientListBySubscriptionOptions{Top: &top32}), nextLink)
		if err != nil {
			return Page{}, describe(op, err)
		}
		for _, v := range page.Value {
			if v != nil {
				out.Vaults = append(out.Vaults, fromVault(v))
			}
		}
		out.NextLink = deref(page.NextLink)
	case KindManagedHSMs:
		client, err := armkeyvault.NewManagedHsmsClient(subscriptionID, cred, opts)
		if err != nil {
			return Page{}, fmt.Errorf("%w: %w", azure.ErrInvalidConnection, err)
		}
		page, err := onePage(ctx, client.NewListBySubscriptionPager(&armkeyvault.ManagedHsmsClientListBySubscriptionOptions{Top: &top32}), nextLink)
		if err != nil {
			return Page{}, describe(op, err)
		}
		for _, h := range page.Value {
			if h != nil {
				out.Vaults = append(out.Vaults, fromManagedHSM(h))
			}
		}
		out.NextLink = deref(page.NextLink)
	}
	if len(out.Vaults) > top {
		// ARM does not return more than $top; a page that does would make
		// the reply grow past what the client asked for.
		return Page{}, &Error{Op: op, Status: 200, Code: "PageTooLarge", Message: fmt.Sprintf("Azure returned %d entries for $top=%d", len(out.Vaults), top)}
	}
	if out.NextLink != "" {
		if _, err := CheckNextLink(rm, kind, subscriptionID, out.NextLink); err != nil {
			return Page{}, &Error{Op: op, Status: 200, Code: "InvalidNextLink", Message: "Azure returned a nextLink that is not a continuation of this list on " + rm.Host}
		}
	}
	return out, nil
}

// onePage fetches the first page of pager, or with nextLink the page it
// points at. The pager is rehydrated from a page holding only nextLink
// (azcore's Pager implements json.Unmarshaler for this): its next fetch
// then GETs nextLink through the client's pipeline — credential, retry and
// throttling policies included — exactly as the SDK follows its own links.
func onePage[T any](ctx context.Context, pager *runtime.Pager[T], nextLink string) (T, error) {
	var zero T
	if nextLink != "" {
		b, err := json.Marshal(map[string]string{"nextLink": nextLink})
		if err != nil {
			return zero, err
		}
		if err := pager.UnmarshalJSON(b); err != nil {
			return zero, fmt.Errorf("arm: resume pager: %w", err)
		}
		// The first NextPage hands back the rehydrated page itself,
		// without a request.
		if _, err := pager.NextPage(ctx); err != nil {
			return zero, fmt.Errorf("arm: resume pager: %w", err)
		}
		if !pager.More() {
			return zero, fmt.Errorf("arm: resume pager: the nextLink was not taken")
		}
	}
	return pager.NextPage(ctx)
}

func deref[T any](p *T) T {
	if p == nil {
		var zero T
		return zero
	}
	return *p
}
