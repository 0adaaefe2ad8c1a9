package bundle

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	opabundle "github.com/open-policy-agent/opa/v1/bundle"
)

// ErrKeyID is a signature that does not name the configured key id.
var ErrKeyID = errors.New("bundle signature key id")

// checkKeyID requires every signature of b to name keyID, in its JWT
// header (kid) or its deprecated keyid claim. OPA verifies with the
// configured key whatever id the signature names; here the id must also
// match, so a bundle signed for another key id is refused even when the
// same key material signed it.
func checkKeyID(b *opabundle.Bundle, keyID string) error {
	if len(b.Signatures.Signatures) == 0 {
		return fmt.Errorf("%w: the bundle is not signed", ErrKeyID)
	}
	for _, tok := range b.Signatures.Signatures {
		parts := strings.Split(tok, ".")
		if len(parts) != 3 {
			return fmt.Errorf("%w: malformed signature", ErrKeyID)
		}
		var hdr struct {
			Kid string `json:"kid"`
		}
		var claims struct {
			KeyID string `json:"keyid"`
		}
		if err := decodeSegment(parts[0], &hdr); err != nil {
			return err
		}
		if err := decodeSegment(parts[1], &claims); err != nil {
			return err
		}
		got := hdr.Kid
		if got == "" {
			got = claims.KeyID
		}
		if got != keyID {
			return fmt.Errorf("%w: signed for key id %q, want %q", ErrKeyID, got, keyID)
		}
	}
	return nil
}

func decodeSegment(seg string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return fmt.Errorf("%w: malformed signature: %w", ErrKeyID, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: malformed signature: %w", ErrKeyID, err)
	}
	return nil
}
