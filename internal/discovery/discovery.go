package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/akvsync/akvsync/internal/apierr"
	"github.com/akvsync/akvsync/internal/arm"
	"github.com/akvsync/akvsync/internal/azure"
	"github.com/akvsync/akvsync/internal/connections"
	"github.com/akvsync/akvsync/pkg/events"
)

// Connections resolves a connection name or id to the decrypted
// connection; *connections.Registry implements it. Errors wrap
// connections.ErrNotFound for an unknown connection.
type Connections interface {
	Connection(ctx context.Context, ref string) (azure.Connection, error)
}

// Service serves the discovery API. It is safe for concurrent use, also
// by several processes.
type Service struct {
	conns Connections
	arm   *arm.Client
	kv    jetstream.KeyValue
	cfg   Config
}

// New opens the subscriptions bucket (which [events.Topology.EnsureStreams]
// must have created) and returns the service. Its Azure credentials and
// transports are cached per connection for the life of the service.
func New(ctx context.Context, js jetstream.JetStream, conns Connections, cfg Config) (*Service, error) {
	if js == nil || conns == nil {
		return nil, errors.New("discovery: nil JetStream context or connections")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	kv, err := events.Bucket(ctx, js, events.BucketSubscriptions)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	f, err := azure.NewFactory(cfg.Azure)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	client, err := arm.New(f, cfg.ARM)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return &Service{conns: conns, arm: client, kv: kv, cfg: cfg}, nil
}

// GetSubscriptionsRequest is the body of POST /cckm/azure/get-subscriptions.
type GetSubscriptionsRequest struct {
	// Connection is the connection's name or id.
	Connection string `json:"connection"`
}

// SubscriptionList is what get-subscriptions found.
type SubscriptionList struct {
	// Subscriptions are the subscriptions the connection sees, live from
	// Azure, in ARM's order.
	Subscriptions []arm.Subscription
	// Truncated reports that Azure listed more than the configured
	// maximum (arm.Config.MaxSubscriptions); the first ones are returned.
	Truncated bool
}

// GetSubscriptions lists the subscriptions the connection sees, live
// from Azure Resource Manager, and stores each (created, or brought up to
// date) in the subscriptions bucket. A storing failure fails the call with
// [ErrUnavailable] (storing is idempotent: retry), so what a client was
// shown is also what GET …/subscriptions shows.
func (s *Service) GetSubscriptions(ctx context.Context, req GetSubscriptionsRequest) (SubscriptionList, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	conn, err := s.connection(ctx, req.Connection)
	if err != nil {
		return SubscriptionList{}, err
	}
	subs, truncated, err := s.arm.Subscriptions(ctx, conn)
	if err != nil {
		return SubscriptionList{}, s.azureErr(conn, err)
	}
	if err := s.store(ctx, conn.Name, subs); err != nil {
		return SubscriptionList{}, err
	}
	ev := s.cfg.Logger.Info()
	if truncated {
		ev = s.cfg.Logger.Warn().Bool("truncated", true)
	}
	ev.Str("connection", conn.Name).Int("subscriptions", len(subs)).Msg("subscriptions discovered")
	return SubscriptionList{Subscriptions: subs, Truncated: truncated}, nil
}

// GetVaultsRequest is the body of POST /cckm/azure/get-vaults and
// /get-managed-hsms. Null fields are absent.
type GetVaultsRequest struct {
	// Connection is the connection's name or id.
	Connection string `json:"connection"`
	// SubscriptionID is the Azure subscription to list.
	SubscriptionID string `json:"subscription_id"`
	// Limit is the page size: absent or 0 means [DefaultLimit], at most
	// [MaxLimit].
	Limit *int `json:"limit"`
	// NextLink continues a previous answer's list; absent or "" starts at
	// the first page.
	NextLink *string `json:"nextLink"`
}

// VaultList is one page of get-vaults or get-managed-hsms, in CCKM's
// shape: each vault is the ARM object, which add-vaults accepts as is.
type VaultList struct {
	Vaults []arm.Vault `json:"vaults"`
	// Connection and SubscriptionID echo the request.
	Connection     string `json:"connection"`
	SubscriptionID string `json:"subscription_id"`
	// NextLink continues the list (pass it back unchanged); null on the
	// last page.
	NextLink *string `json:"nextLink"`
}

// GetVaults lists one page of the Key Vaults (kind arm.KindVaults) or
// Managed HSM pools (arm.KindManagedHSMs) of a subscription, live from
// Azure Resource Manager. Nothing is stored.
func (s *Service) GetVaults(ctx context.Context, kind arm.Kind, req GetVaultsRequest) (VaultList, error) {
	limit := DefaultLimit
	if req.Limit != nil && *req.Limit != 0 {
		limit = *req.Limit
	}
	switch {
	case !kind.Valid():
		return VaultList{}, invalidf("unknown resource type %q", kind)
	case req.Connection == "":
		return VaultList{}, invalidf("connection is required")
	case req.SubscriptionID == "":
		return VaultList{}, invalidf("subscription_id is required")
	case !arm.ValidSubscriptionID(req.SubscriptionID):
		return VaultList{}, invalidf("subscription_id must be an Azure subscription id (letters, digits and '-', at most 64)")
	case limit < 1 || limit > MaxLimit:
		return VaultList{}, invalidf("limit must be 1 to %d (default %d)", MaxLimit, DefaultLimit)
	}
	nextLink := ""
	if req.NextLink != nil {
		nextLink = *req.NextLink
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	conn, err := s.connection(ctx, req.Connection)
	if err != nil {
		return VaultList{}, err
	}
	page, err := s.arm.Vaults(ctx, conn, kind, req.SubscriptionID, limit, nextLink)
	if err != nil {
		return VaultList{}, s.azureErr(conn, err)
	}
	out := VaultList{Vaults: page.Vaults, Connection: req.Connection, SubscriptionID: req.SubscriptionID}
	if out.Vaults == nil {
		out.Vaults = []arm.Vault{}
	}
	if page.NextLink != "" {
		out.NextLink = &page.NextLink
	}
	s.cfg.Logger.Info().Str("connection", conn.Name).Str("subscription_id", req.SubscriptionID).Str("type", string(kind)).
		Int("count", len(out.Vaults)).Bool("more", out.NextLink != nil).Bool("continued", nextLink != "").Msg("vaults discovered")
	return out, nil
}

// connection resolves the request's connection.
func (s *Service) connection(ctx context.Context, ref string) (azure.Connection, error) {
	switch {
	case ref == "":
		return azure.Connection{}, invalidf("connection is required")
	case len(ref) > MaxFieldLen:
		return azure.Connection{}, invalidf("connection is longer than %d bytes", MaxFieldLen)
	}
	conn, err := s.conns.Connection(ctx, ref)
	switch {
	case err == nil:
		return conn, nil
	case errors.Is(err, connections.ErrNotFound), errors.Is(err, connections.ErrInvalid):
		return azure.Connection{}, invalidf("connection %q is not a known connection", ref)
	case errors.Is(err, connections.ErrCorrupt):
		return azure.Connection{}, apierr.Wrap(ErrUnprocessable, err, "connection %q cannot be used: %v", ref, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return azure.Connection{}, err
	default:
		return azure.Connection{}, unavailable("read connection "+ref, err)
	}
}

// azureErr maps the errors of package arm: a connection that cannot be
// used is unprocessable, an invalid argument is invalid, Azure's answers
// pass through.
func (s *Service) azureErr(conn azure.Connection, err error) error {
	switch {
	case errors.Is(err, azure.ErrNoResourceManager):
		return apierr.Wrap(ErrUnprocessable, err, "connection %s has no resource_manager_url (cloud %s has no default): set one to use discovery", conn.Name, conn.Cloud)
	case errors.Is(err, azure.ErrInvalidConnection):
		return apierr.Wrap(ErrUnprocessable, err, "connection %s cannot be used: %s", conn.Name, strings.TrimPrefix(err.Error(), azure.ErrInvalidConnection.Error()+" "))
	case errors.Is(err, arm.ErrInvalid):
		return apierr.Wrap(ErrInvalid, err, "%s", err.Error())
	}
	if errors.Is(err, arm.ErrAzure) {
		s.cfg.Logger.Info().Str("connection", conn.Name).Err(err).Msg("discovery: Azure refused")
	}
	return err
}
