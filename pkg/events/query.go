package events

// DefaultLimit is the page size of a list when the request gives none.
const DefaultLimit = 10

// LimitAll as a query limit asks for every match (CCKM's limit=-1).
const LimitAll = -1

// MaxPageLimit is the largest limit of a keys.list query, so that its
// one reply stays far below NATS' max_payload. Longer key lists (and
// LimitAll) go through keys.export, in chunks.
const MaxPageLimit = 100

// MaxChunkBytes bounds the body of every keys.export chunk. A chunk holds
// as many records as fit (at least one).
const MaxChunkBytes = 256 << 10

// ExportWindow is how many keys.export chunks may await their
// acknowledgement at once.
const ExportWindow = 4

// KeyExportRequest is the body of the keys.export query endpoint. The
// worker answers the request itself with a QueryReply of a KeyPage
// without resources (skip, limit, total) or an error, then sends the
// records to Inbox as KeyExportChunk messages, each with a reply subject
// the receiver acknowledges (with an empty reply) once it has handled the
// chunk. At most ExportWindow chunks are unacknowledged, so both sides
// hold at most ExportWindow × MaxChunkBytes of the list.
type KeyExportRequest struct {
	Query KeyQuery `json:"query"`
	// Inbox is the requester's subject for the chunks; it must start
	// with "_INBOX.".
	Inbox string `json:"inbox"`
}

// KeyExportChunk is one message of a keys.export stream: Seq counts from
// 1; the last chunk has Done (and possibly no resources); an Error ends
// the stream.
type KeyExportChunk struct {
	Seq       int         `json:"seq"`
	Done      bool        `json:"done,omitempty"`
	Error     *QueryError `json:"error,omitempty"`
	Resources []KeyRecord `json:"resources"`
}

// KeyQuery filters and pages the key inventory. Zero fields do not filter.
// It is the request body of the keys.list query endpoint.
type KeyQuery struct {
	// ID, if set, matches one key record id.
	ID string `json:"id,omitempty"`
	// VaultID matches keys of one vault by vault id.
	VaultID string `json:"key_vault_id,omitempty"`
	// KeyVault matches keys of one vault by "name::subscription" or, when
	// it has no "::", by bare vault name.
	KeyVault string `json:"key_vault,omitempty"`
	// KeyName matches the key name exactly (case-insensitive).
	KeyName string `json:"key_name,omitempty"`
	// Kid matches the key identifier exactly, with or without version.
	Kid string `json:"kid,omitempty"`
	// Enabled and Gone, when non-nil, match the flag.
	Enabled *bool `json:"enabled,omitempty"`
	Gone    *bool `json:"gone,omitempty"`
	// KeySize matches the key size in bits (0: any).
	KeySize int `json:"key_size,omitempty"`
	// Skip and Limit page the result; Limit LimitAll returns all, 0 means
	// DefaultLimit.
	Skip  int `json:"skip"`
	Limit int `json:"limit"`
	// Sort is a field name, "-" prefixed for descending: createdAt (the
	// default is -createdAt), updatedAt, syncedAt, key_name.
	Sort string `json:"sort,omitempty"`
}

// KeySortFields are the values KeyQuery.Sort accepts, without the "-".
var KeySortFields = []string{"createdAt", "updatedAt", "syncedAt", "key_name"}

// JobQuery filters and pages the jobs. Zero fields do not filter; jobs are
// sorted newest first.
type JobQuery struct {
	ID            string    `json:"id,omitempty"`
	OverallStatus JobStatus `json:"overall_status,omitempty"`
	// KeyVaults matches jobs that include any of these vaults
	// ("name::subscription", bare name, or vault id).
	KeyVaults []string `json:"key_vaults,omitempty"`
	// JobConfigID matches the jobs a scheduler job config started.
	JobConfigID string `json:"job_config_id,omitempty"`
	Skip        int    `json:"skip"`
	Limit       int    `json:"limit"`
}

// MaxJobsLimit bounds the page size of a jobs list: a page never carries
// more jobs than this, limit=-1 included.
const MaxJobsLimit = 100

// ListDetailVaults bounds the vaults each job of a jobs list carries;
// GetDetailVaults bounds those of a single job's GET. The rest are paged
// with [JobVaultQuery].
const (
	ListDetailVaults = 10
	GetDetailVaults  = 100
)

// JobGetRequest is the body of the jobs.get query endpoint.
type JobGetRequest struct {
	ID string `json:"id"`
	// Vaults bounds the vaults of the reply (0: none).
	Vaults int `json:"vaults"`
}

// JobVaultQuery pages the vaults of one job, by qualified name within each
// status, statuses in [VaultStatuses] order. Status, when set, filters.
type JobVaultQuery struct {
	JobID  string      `json:"job_id"`
	Status VaultStatus `json:"status,omitempty"`
	Skip   int         `json:"skip"`
	Limit  int         `json:"limit"`
}

// MaxJobVaultsLimit bounds the page size of a job's vault list.
const MaxJobVaultsLimit = 1000

// JobVaultPage is one page of a job's vaults in CCKM's list envelope.
type JobVaultPage struct {
	Skip      int        `json:"skip"`
	Limit     int        `json:"limit"`
	Total     int        `json:"total"`
	Resources []JobVault `json:"resources"`
}

// KeyPage is one page of keys in CCKM's list envelope.
type KeyPage struct {
	Skip      int         `json:"skip"`
	Limit     int         `json:"limit"`
	Total     int         `json:"total"`
	Resources []KeyRecord `json:"resources"`
}

// JobPage is one page of jobs in CCKM's list envelope.
type JobPage struct {
	Skip      int         `json:"skip"`
	Limit     int         `json:"limit"`
	Total     int         `json:"total"`
	Resources []JobDetail `json:"resources"`
}

// GetRequest is the body of the keys.get and jobs.get query endpoints.
type GetRequest struct {
	ID string `json:"id"`
}

// QueryError is the body of a failed query reply. Code is one of the
// QueryErr* codes so callers can branch on it.
type QueryError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Query error codes.
const (
	QueryErrNotFound   = "not_found"
	QueryErrBadRequest = "bad_request"
	QueryErrInternal   = "internal"
	// QueryErrUnavailable: the answering worker's inventory is behind the
	// streams (it could not catch up in time); ask again.
	QueryErrUnavailable = "unavailable"
)

// QueryReply wraps every query reply: exactly one of Error and the payload
// is set.
type QueryReply[T any] struct {
	Error *QueryError `json:"error,omitempty"`
	Data  *T          `json:"data,omitempty"`
}

// PageOf returns items[skip:skip+limit] within bounds; a negative limit
// (LimitAll) returns everything from skip. It never returns nil.
func PageOf[T any](items []T, skip, limit int) []T {
	if skip >= len(items) {
		return []T{}
	}
	items = items[skip:]
	if limit >= 0 && limit < len(items) {
		items = items[:limit]
	}
	return items
}
