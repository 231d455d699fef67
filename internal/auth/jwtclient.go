package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/store"
)

// AssertionType is the client_assertion_type of RFC 7523 §2.2.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// AssertionAlgs are the only signature algorithms a client assertion or a
// DPoP proof may use (SPEC §15): no RS256 (PKCS#1 v1.5), no HMAC, no none.
var AssertionAlgs = []jose.SignatureAlgorithm{jose.PS256, jose.ES256, jose.EdDSA}

// maxAssertionLife bounds exp - iat of a client assertion.
const maxAssertionLife = 5 * time.Minute

// ErrInvalidClientSpec is a client definition resetd refuses to store.
var ErrInvalidClientSpec = errors.New("auth: invalid client definition")

// AuthenticateAssertion checks a private_key_jwt client assertion (RFC
// 7523 §3): signed by a key of the client's JWK Set with PS256, ES256 or
// EdDSA; iss = sub = the client id; aud naming one of audiences (the
// token endpoint URL or the issuer); exp at most five minutes after iat;
// a jti never seen before on any replica. Every failure is
// ErrInvalidClient (ErrThrottled after repeated failures for one id from
// one IP), and so is a disabled or deleted client.
func (s *Service) AuthenticateAssertion(ctx context.Context, assertion string, audiences []string) (store.Client, error) {
	tok, err := jwt.ParseSigned(assertion, AssertionAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return store.Client{}, ErrInvalidClient
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil || unverified.Issuer == "" || len(unverified.Issuer) > 200 {
		return store.Client{}, ErrInvalidClient
	}
	id := unverified.Issuer
	// The token endpoint signs right after: pick up a rotated signing key
	// as verification does.
	s.refresh(ctx)
	if err := s.throttled(ctx, id); err != nil {
		return store.Client{}, err
	}
	c, err := s.checkAssertion(ctx, tok, id, audiences)
	if errors.Is(err, ErrInvalidClient) {
		if ferr := s.countFailure(ctx, id); ferr != nil {
			return store.Client{}, ferr
		}
	}
	if err == nil && !c.DisabledAt.IsZero() {
		return store.Client{}, ErrInvalidClient
	}
	return c, err
}

func (s *Service) checkAssertion(ctx context.Context, tok *jwt.JSONWebToken, id string, audiences []string) (store.Client, error) {
	c, err := s.store.Client(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Client{}, ErrInvalidClient
	}
	if err != nil {
		return store.Client{}, err
	}
	if c.AuthMethod != MethodPrivateKeyJWT {
		return store.Client{}, ErrInvalidClient
	}
	set, err := parseClientJWKS(c.JWKS)
	if err != nil {
		return store.Client{}, ErrInvalidClient
	}
	h := tok.Headers[0]
	keys := set.Keys
	if h.KeyID != "" {
		keys = set.Key(h.KeyID)
	}
	var std jwt.Claims
	verified := false
	for _, k := range keys {
		if k.Algorithm != "" && k.Algorithm != h.Algorithm {
			continue
		}
		if tok.Claims(k.Key, &std) == nil {
			verified = true
			break
		}
	}
	if !verified {
		return store.Client{}, ErrInvalidClient
	}
	now := s.now()
	if std.Issuer != id || std.Subject != id || std.ID == "" || len(std.ID) > 200 || std.Expiry == nil {
		return store.Client{}, ErrInvalidClient
	}
	if !slices.ContainsFunc(audiences, func(a string) bool { return slices.Contains(std.Audience, a) }) {
		return store.Client{}, ErrInvalidClient
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Time: now}, 30*time.Second); err != nil {
		return store.Client{}, ErrInvalidClient
	}
	exp := std.Expiry.Time()
	start := now
	if std.IssuedAt != nil {
		start = std.IssuedAt.Time()
		if start.After(now.Add(30 * time.Second)) {
			return store.Client{}, ErrInvalidClient
		}
	}
	if exp.Sub(start) > maxAssertionLife {
		return store.Client{}, ErrInvalidClient
	}
	// Single use until exp (plus the leeway exp was checked with).
	if err := s.store.UseOnce(ctx, onceKey("jwt", id, std.ID), exp.Add(30*time.Second), now); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Client{}, ErrInvalidClient
		}
		return store.Client{}, err
	}
	return c, nil
}

// onceKey names a single-use value in the shared store by a hash, so
// whatever bytes a client sends, the key is short and storable.
func onceKey(kind, scope, value string) string {
	sum := sha256.Sum256([]byte(scope + "\x00" + value))
	return kind + ":" + hex.EncodeToString(sum[:])
}

// throttled refuses a client id that failed too often lately from the
// request's IP (failKey); every replica counts through the store.
func (s *Service) throttled(ctx context.Context, id string) error {
	var failures int
	if err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		failures, err = tx.Count(ctx, failKey(id, request.ClientIP(ctx)), failWindow, s.now())
		return err
	}); err != nil {
		return fmt.Errorf("auth: failure count: %w", err)
	}
	if failures >= maxFailures {
		return ErrThrottled
	}
	return nil
}

func (s *Service) countFailure(ctx context.Context, id string) error {
	return s.store.Update(ctx, func(tx store.Tx) error {
		_, err := tx.Hit(ctx, failKey(id, request.ClientIP(ctx)), failWindow, s.now())
		return err
	})
}
