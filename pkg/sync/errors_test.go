package sync

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

func TestErrorTextAndClassify(t *testing.T) {
	t.Run("LongErrorsAreCutToOneShortLine", func(t *testing.T) {
		err := errors.New(strings.Repeat("x", 1000) + "\nsecond line with details")
		got := errorText(err)
		if strings.Contains(got, "\n") || strings.Contains(got, "second") || len(got) > MaxErrorText+len("…") {
			t.Fatalf("errorText = %q (%d bytes)", got, len(got))
		}
	})
	t.Run("KeyVaultErrorsAreStatusAndCode", func(t *testing.T) {
		err := fmt.Errorf("list keys: %w", &azcore.ResponseError{StatusCode: 403, ErrorCode: "Forbidden"})
		if got := errorText(err); got != "403 Forbidden" {
			t.Fatalf("errorText = %q", got)
		}
		if !errors.Is(classify(err), ErrPermanent) {
			t.Fatal("a 403 is not permanent")
		}
		if errors.Is(classify(&azcore.ResponseError{StatusCode: 503}), ErrPermanent) {
			t.Fatal("a 503 is permanent")
		}
	})
	t.Run("ARefusedCredentialIsPermanentAndShort", func(t *testing.T) {
		err := fmt.Errorf("list keys: %w", &azidentity.AuthenticationFailedError{RawResponse: &http.Response{StatusCode: http.StatusUnauthorized}})
		if got := errorText(err); got != "authentication failed: Entra ID answered 401" {
			t.Fatalf("errorText = %q", got)
		}
		if !errors.Is(classify(err), ErrPermanent) {
			t.Fatal("a refused credential is not permanent")
		}
	})
}
