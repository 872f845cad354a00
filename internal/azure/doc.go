// Package azure adapts the Azure SDK (azidentity, azkeys) to akvsync: it
// turns a [Connection] — tenant, credential, cloud, custom endpoints and CA —
// into token credentials and Key Vault clients, and puts akvsync's rate
// control into the SDK's request pipeline.
package azure
