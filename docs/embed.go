// Package docs holds akvsync's documentation; it exports the OpenAPI
// document so the API serves the very bytes of docs/openapi.yaml.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml, the API's OpenAPI 3 document, as the API
// serves it on GET /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
