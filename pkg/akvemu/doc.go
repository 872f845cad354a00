// Package akvemu emulates, in process and over HTTPS, what akvsync talks to in
// Azure: many Key Vaults and Managed HSM pools (the keys data plane), the
// Azure Resource Manager reads that discover them (subscriptions,
// Microsoft.KeyVault/vaults and managedHSMs), and the Entra ID token endpoint,
// closely enough that the unmodified azkeys, azidentity and azcore ARM clients
// work against it. Start one with Start; docs/emulator.md describes the wire
// behaviour and where each shape comes from.
package akvemu
