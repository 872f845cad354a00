// Package connections is the registry of Azure connections: CCKM's
// /connectionmgmt/services/azure/connections resource, stored in the
// akvsync-connections JetStream key-value bucket.
//
// A connection record carries every CCKM field (tenant, client id, cloud,
// custom endpoints, Azure Stack CA, labels, products, …) and its secrets —
// the client secret, or the client certificate with its private key — only
// in sealed form ([secrets.Sealer], associated data = connection id and
// field name). Secrets leave the package only inside the [azure.Connection]
// that [Registry.Connection] hands to the vault syncer (it implements
// azure.Connections) and that [Registry.Test] uses; the API view
// [Connection] has no secret fields.
//
// Every field of CCKM's Azure connection models is accepted (Thales'
// Terraform provider and Ansible collections): null and empty values are
// absent, the read-only fields a client sends back are ignored
// ([ReadOnlyFields]), anything else is refused naming the field. With
// is_certificate_used and no certificate, [Registry.Create] generates the
// client certificate (RSA 2048, self-signed, cert_duration days) and the
// view returns only its public part and thumbprint. [Registry.Test]
// records last_connection_ok/_error/_at on the record. The endpoints a
// connection may override have cloud defaults, applied by the
// [azure.Connection] that [Registry.Connection] returns
// (ResourceManagerURL, ResourceManagerAudience, ManagedHSMDNSSuffix,
// VaultDNSSuffix).
//
// Bucket layout: the record under the connection id (a UUID), and a
// uniqueness index "byname.<hex of the lower-case name>" → id written with
// kv.Create, so names are unique across API processes (case-insensitively).
// Updates are compare-and-set on the record's revision.
package connections
