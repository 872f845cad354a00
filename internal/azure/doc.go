// Package azure adapts the Azure SDK (azidentity, azkeys, azcore) to
// akvsync: it turns a [Connection] — tenant, credential, cloud, custom
// endpoints and CA — into token credentials, Key Vault clients and the
// options of Azure Resource Manager clients, and puts akvsync's rate
// control into the SDK's request pipeline.
package azure
