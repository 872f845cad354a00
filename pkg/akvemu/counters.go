package akvemu

import "sync/atomic"

// Operation names a data-plane operation in Counters.
type Operation string

// Data-plane operations counted per vault.
const (
	OpListKeys          Operation = "ListKeys"
	OpListKeyVersions   Operation = "ListKeyVersions"
	OpGetKey            Operation = "GetKey"
	OpCreateKey         Operation = "CreateKey"
	OpImportKey         Operation = "ImportKey"
	OpUpdateKey         Operation = "UpdateKey"
	OpDeleteKey         Operation = "DeleteKey"
	OpRotateKey         Operation = "RotateKey"
	OpListDeletedKeys   Operation = "ListDeletedKeys"
	OpGetDeletedKey     Operation = "GetDeletedKey"
	OpRecoverDeletedKey Operation = "RecoverDeletedKey"
	OpPurgeDeletedKey   Operation = "PurgeDeletedKey"
	OpOther             Operation = "Other"
)

// StatusDropped is the status under which dropped connections are counted.
const StatusDropped = 0

type opCode uint8

const (
	opListKeys opCode = iota
	opListKeyVersions
	opGetKey
	opCreateKey
	opImportKey
	opUpdateKey
	opDeleteKey
	opRotateKey
	opListDeletedKeys
	opGetDeletedKey
	opRecoverDeletedKey
	opPurgeDeletedKey
	opOther
	numOps
)

var opNames = [numOps]Operation{
	OpListKeys, OpListKeyVersions, OpGetKey, OpCreateKey, OpImportKey, OpUpdateKey, OpDeleteKey,
	OpRotateKey, OpListDeletedKeys, OpGetDeletedKey, OpRecoverDeletedKey, OpPurgeDeletedKey, OpOther,
}

// trackedStatuses are the statuses the emulator answers with; index 0 is StatusDropped.
var trackedStatuses = [...]int{StatusDropped, 200, 204, 400, 401, 403, 404, 405, 409, 429, 500, 503}

const numStatus = len(trackedStatuses)

func statusIndex(status int) int {
	switch status {
	case 200:
		return 1
	case 204:
		return 2
	case 400:
		return 3
	case 401:
		return 4
	case 403:
		return 5
	case 404:
		return 6
	case 405:
		return 7
	case 409:
		return 8
	case 429:
		return 9
	case 500:
		return 10
	case 503:
		return 11
	}
	return 0
}

// counterSet is a lock-free table of request counts by operation and status.
type counterSet struct {
	c [numOps][numStatus]atomic.Int64
}

func (s *counterSet) add(op opCode, status int) { s.c[op][statusIndex(status)].Add(1) }

func (s *counterSet) reset() {
	for i := range s.c {
		for j := range s.c[i] {
			s.c[i][j].Store(0)
		}
	}
}

func (s *counterSet) snapshot(vault string) Counters {
	out := Counters{Vault: vault, ByOperation: map[Operation]map[int]int64{}}
	for i := range s.c {
		for j := range s.c[i] {
			if n := s.c[i][j].Load(); n != 0 {
				m := out.ByOperation[opNames[i]]
				if m == nil {
					m = map[int]int64{}
					out.ByOperation[opNames[i]] = m
				}
				m[trackedStatuses[j]] = n
				out.Requests += n
			}
		}
	}
	return out
}

// Counters is a snapshot of a vault's data-plane requests by operation and HTTP
// status (StatusDropped for dropped connections). Connections refused while a vault is
// unreachable never reach the emulator and are not counted.
type Counters struct {
	Vault       string                      `json:"vault"`        // vault name
	Requests    int64                       `json:"requests"`     // all counted requests
	ByOperation map[Operation]map[int]int64 `json:"by_operation"` // operation -> HTTP status -> count
}

// Count returns the number of requests of op answered with status.
func (c Counters) Count(op Operation, status int) int64 { return c.ByOperation[op][status] }

// Total returns the number of requests of op, whatever their status.
func (c Counters) Total(op Operation) int64 {
	var n int64
	for _, v := range c.ByOperation[op] {
		n += v
	}
	return n
}
