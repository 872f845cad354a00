// Package secrets seals connection secrets (Azure client secrets, private
// keys) at rest with AES-256-GCM under a rotatable master key ring.
//
// A sealed value is a string "v1:<kid>:<base64url(nonce || ciphertext)>"
// that records which master key sealed it. The caller passes associated data
// (for example the connection id and field name) that must be presented
// again to open it, so a sealed value cannot be moved to another record.
//
// Rotation: add a new key at the front of the ring (it becomes current),
// restart, then re-seal stored values ([Sealer.NeedsReseal], [Sealer.Reseal])
// and finally drop the old key.
package secrets
