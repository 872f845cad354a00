// Package arm reads what akvsync discovers through Azure Resource Manager:
// the subscriptions a connection can see, and the Key Vaults
// (Microsoft.KeyVault/vaults) and Managed HSM pools
// (Microsoft.KeyVault/managedHSMs) of a subscription, one page at a time.
//
// It uses Azure's own resource manager modules (armsubscriptions,
// armkeyvault) over the connection's credential, transport and retry
// policy (package azure builds them); ARM calls go to the connection's
// resource_manager_url or its cloud's default, with that URL as the token
// audience.
//
// Paging is the caller's: [Client.Vaults] fetches one page of at most top
// entries, starting at the first page or at a nextLink from an earlier
// page. A nextLink comes back from clients, so it is checked before any
// request ([CheckNextLink]): it must be the same list of the same
// subscription on the connection's resource manager host, or akvsync would
// send the connection's token wherever a client points it.
//
// Azure's refusals come back as [*Error], which wraps [ErrAzure] (and
// [ErrThrottled] for 429 and 503), with Azure's status, error code and
// message but never a token or a secret.
package arm
