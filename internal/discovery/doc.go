// Package discovery is CCKM's Azure discovery API behind the HTTP layer:
// get-subscriptions, get-vaults and get-managed-hsms list what a
// connection can see in Azure Resource Manager (package arm), live; the
// subscriptions get-subscriptions saw are stored in the
// akvsync-subscriptions bucket, where CCKM's GET and DELETE
// …/subscriptions[/{id}] manage them.
//
// It runs in the API process; it is the API's only Azure caller besides
// the connection test. It reads connections (with their secrets) from the
// connection registry, and never writes vaults: what get-vaults returns is
// registered by add-vaults (package control), unmodified.
//
// Errors wrap [ErrInvalid], [ErrNotFound], [ErrUnprocessable],
// [ErrUnavailable], or an Azure failure of package arm ([arm.ErrAzure],
// [arm.ErrThrottled]).
//
// # Bucket layout
//
// akvsync-subscriptions holds one [Subscription] (JSON) per Azure
// subscription, under its id: a version 5 UUID of the lower-cased
// subscription id ([RecordID]), so every API process writes a given
// subscription under the same key, and an upsert is a get and a
// compare-and-set.
package discovery
