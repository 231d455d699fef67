package auth

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetd/resetd/internal/store"
)

// ErrInvalidDPoPProof is a DPoP proof that is missing, malformed, stale,
// replayed, or made for another request, key or token (RFC 9449 §4.3).
var ErrInvalidDPoPProof = errors.New("auth: invalid DPoP proof")

// dpopWindow is how far a proof's iat may be from now (SPEC §15).
const dpopWindow = 60 * time.Second

type dpopClaims struct {
	ID  string           `json:"jti"`
	HTM string           `json:"htm"`
	HTU string           `json:"htu"`
	IAT *jwt.NumericDate `json:"iat"`
	ATH string           `json:"ath,omitempty"`
}

// CheckDPoP verifies a DPoP proof for a request with method and URL
// (scheme, host and path as clients address resetd: the public URL) and
// returns the thumbprint (jkt) of the key that signed it. accessToken is
// the token the proof must carry the hash of (ath); "" at the token
// endpoint, where a proof carries none. Each proof's jti is accepted once
// by all replicas together.
func (s *Service) CheckDPoP(ctx context.Context, proof, method, requestURL, accessToken string) (string, error) {
	tok, err := jose.ParseSigned(proof, AssertionAlgs)
	if err != nil || len(tok.Signatures) != 1 {
		return "", fmt.Errorf("%w: not a signed JWT with PS256, ES256 or EdDSA", ErrInvalidDPoPProof)
	}
	h := tok.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return "", fmt.Errorf("%w: typ must be dpop+jwt", ErrInvalidDPoPProof)
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.IsPublic() || !jwk.Valid() {
		return "", fmt.Errorf("%w: the header must carry the public jwk", ErrInvalidDPoPProof)
	}
	payload, err := tok.Verify(jwk.Key)
	if err != nil {
		return "", fmt.Errorf("%w: bad signature", ErrInvalidDPoPProof)
	}
	var c dpopClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", fmt.Errorf("%w: malformed claims", ErrInvalidDPoPProof)
	}
	now := s.now()
	switch {
	case c.ID == "" || len(c.ID) > 200:
		return "", fmt.Errorf("%w: jti missing", ErrInvalidDPoPProof)
	case c.HTM != method:
		return "", fmt.Errorf("%w: htm is not this request's method", ErrInvalidDPoPProof)
	case !sameHTU(c.HTU, requestURL):
		return "", fmt.Errorf("%w: htu is not this request's URL", ErrInvalidDPoPProof)
	case c.IAT == nil || c.IAT.Time().Before(now.Add(-dpopWindow)) || c.IAT.Time().After(now.Add(dpopWindow)):
		return "", fmt.Errorf("%w: iat is not within 60 seconds of now", ErrInvalidDPoPProof)
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return "", fmt.Errorf("%w: ath is not the hash of this access token", ErrInvalidDPoPProof)
		}
	}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("%w: jwk thumbprint", ErrInvalidDPoPProof)
	}
	jkt := base64.RawURLEncoding.EncodeToString(thumb)
	if err := s.store.UseOnce(ctx, onceKey("dpop", jkt, c.ID), now.Add(2*dpopWindow), now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("%w: jti already used", ErrInvalidDPoPProof)
		}
		return "", err
	}
	return jkt, nil
}

// sameHTU compares a proof's htu with the request URL the RFC 3986 §6.2
// way that matters here: scheme and host case-insensitively, default
// ports dropped, query and fragment ignored.
func sameHTU(htu, want string) bool {
	a, err1 := url.Parse(htu)
	b, err2 := url.Parse(want)
	if err1 != nil || err2 != nil || a.Host == "" || a.User != nil {
		return false
	}
	norm := func(u *url.URL) string {
		scheme := strings.ToLower(u.Scheme)
		host := strings.ToLower(u.Hostname())
		port := u.Port()
		if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
			port = ""
		}
		if port != "" {
			host = host + ":" + port
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path
	}
	return norm(a) == norm(b)
}
