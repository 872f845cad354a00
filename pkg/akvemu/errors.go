package akvemu

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// Sentinel errors returned by the Go API. Wrapped errors can be tested with errors.Is.
var (
	// ErrInvalidConfig is returned by Config.Validate and Start for unusable settings.
	ErrInvalidConfig = errors.New("akvemu: invalid config")
	// ErrClosed is returned by operations on an emulator that has been closed.
	ErrClosed = errors.New("akvemu: emulator closed")
	// ErrVaultNotFound is returned when no vault has the given name.
	ErrVaultNotFound = errors.New("akvemu: vault not found")
	// ErrVaultExists is returned by AddVault when the name is taken.
	ErrVaultExists = errors.New("akvemu: vault already exists")
	// ErrKeyNotFound is returned when a key (or key version) does not exist.
	ErrKeyNotFound = errors.New("akvemu: key not found")
	// ErrDeletedKeyNotFound is returned when no deleted key has the given name.
	ErrDeletedKeyNotFound = errors.New("akvemu: deleted key not found")
	// ErrKeyDeletedButRecoverable is returned when a key name is in the deleted state and
	// cannot be reused until it is recovered or purged.
	ErrKeyDeletedButRecoverable = errors.New("akvemu: key is deleted but recoverable")
	// ErrKeyExists is returned by a recovery when an active key already has the name.
	ErrKeyExists = errors.New("akvemu: key already exists")
	// ErrBadParameter is returned for invalid key names, types, sizes, curves or operations.
	ErrBadParameter = errors.New("akvemu: bad parameter")
	// ErrPurgeNotAllowed is returned when purge protection forbids a purge.
	ErrPurgeNotAllowed = errors.New("akvemu: purge not allowed")
	// ErrUnknownPrincipal is returned when a client id is not registered.
	ErrUnknownPrincipal = errors.New("akvemu: unknown principal")
	// ErrEventSubscriptionNotFound is returned when no event subscription has the name.
	ErrEventSubscriptionNotFound = errors.New("akvemu: event subscription not found")
	// ErrEventSubscriptionFailed is returned by AddEventSubscription when the
	// webhook's validation handshake fails; the error names the webhook's answer.
	ErrEventSubscriptionFailed = errors.New("akvemu: event subscription validation failed")
)

// Error codes the Key Vault service writes into error bodies and x-ms-error-code.
const (
	CodeBadParameter        = "BadParameter"
	CodeUnauthorized        = "Unauthorized"
	CodeForbidden           = "Forbidden"
	CodeKeyNotFound         = "KeyNotFound"
	CodeConflict            = "Conflict"
	CodeThrottled           = "Throttled"
	CodeInternalServerError = "InternalServerError"
	CodeServiceUnavailable  = "ServiceUnavailable"
	CodeMethodNotAllowed    = "MethodNotAllowed"
	CodeNotFound            = "NotFound"
)

// Messages copied from real service answers.
const (
	msgMissingToken    = "AKV10000: Request is missing a Bearer or PoP token." // #nosec G101 -- an error message text copied from Key Vault, not a credential
	msgThrottled       = "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"
	msgKeyNotFound     = "A key with (name/id) %s was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
	msgInternal        = "An unexpected error occurred while processing the request."
	msgUnavailable     = "The service is temporarily unavailable. Please retry the request."
	msgAccessDenied    = "The user, group or application 'appid=%s;oid=%s;iss=https://sts.windows.net/%s/' does not have keys %s permission on key vault '%s;location=%s'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
	msgRBACDenied      = "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=%s;oid=%s;iss=https://sts.windows.net/%s/\r\nAction: 'Microsoft.KeyVault/vaults/keys/%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\nDenyAssignmentId: null\r\nDecisionReason: null \r\nVault: %s;location=%s\r\n"
	msgHSMDenied       = "Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\nCaller: appid=%s;oid=%s;iss=https://sts.windows.net/%s/\r\nAction: 'Microsoft.KeyVault/managedHsm/keys/%s'\r\nResource: '/keys'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nManagedHsm: %s;location=%s\r\n"
	msgDeletedConflict = "Key %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged."
)

// serviceError is an error answered in the Key Vault format.
type serviceError struct {
	status  int
	code    string
	message string
	inner   string
}

// Error implements error.
func (e *serviceError) Error() string {
	return strconv.Itoa(e.status) + " " + e.code + ": " + e.message
}

// appendErrorBody renders {"error":{"code":…,"message":…,"innererror":{"code":…}}}.
func appendErrorBody(dst []byte, code, message, inner string) []byte {
	dst = append(dst, `{"error":{"code":`...)
	dst = appendJSONString(dst, code)
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, message)
	if inner != "" {
		dst = append(dst, `,"innererror":{"code":`...)
		dst = appendJSONString(dst, inner)
		dst = append(dst, '}')
	}
	return append(dst, "}}"...)
}

// statusFor maps Go-level sentinel errors to a service error.
func statusFor(err error, name string) *serviceError {
	var se *serviceError
	switch {
	case errors.As(err, &se):
		return se
	case errors.Is(err, ErrKeyNotFound):
		return &serviceError{http.StatusNotFound, CodeKeyNotFound, fmt.Sprintf(msgKeyNotFound, name), ""}
	case errors.Is(err, ErrDeletedKeyNotFound):
		return &serviceError{http.StatusNotFound, CodeKeyNotFound, "Deleted Key not found: " + name, ""}
	case errors.Is(err, ErrKeyDeletedButRecoverable):
		return &serviceError{http.StatusConflict, CodeConflict, fmt.Sprintf(msgDeletedConflict, name), "ObjectIsDeletedButRecoverable"}
	case errors.Is(err, ErrKeyExists):
		return &serviceError{http.StatusConflict, CodeConflict, "There was a conflict restoring the key '" + name + "'. The key already exists.", "ObjectAlreadyExists"}
	case errors.Is(err, ErrPurgeNotAllowed):
		return &serviceError{http.StatusForbidden, CodeForbidden, "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service will automatically purge it after the retention period has passed.", "PurgeProtectionEnabled"}
	case errors.Is(err, ErrBadParameter):
		var pe *paramError
		inner := ""
		if errors.As(err, &pe) {
			inner = pe.inner
		}
		return &serviceError{http.StatusBadRequest, CodeBadParameter, badParamMessage(err), inner}
	default:
		return &serviceError{http.StatusInternalServerError, CodeInternalServerError, msgInternal, ""}
	}
}

// badParam builds an ErrBadParameter carrying the service message.
func badParam(message string) error {
	return &paramError{message: message}
}

// badParamInner is badParam with the service's inner error code.
func badParamInner(message, inner string) error {
	return &paramError{message: message, inner: inner}
}

type paramError struct{ message, inner string }

// Error implements error.
func (e *paramError) Error() string { return "akvemu: bad parameter: " + e.message }

// Unwrap makes errors.Is(err, ErrBadParameter) hold.
func (e *paramError) Unwrap() error { return ErrBadParameter }

func badParamMessage(err error) string {
	var pe *paramError
	if errors.As(err, &pe) {
		return pe.message
	}
	return "The request is invalid."
}
