package auth

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"

	"github.com/resetd/resetd/internal/store"
)

// Binding is what an access token is bound to (its cnf claim): a client
// certificate (RFC 8705 §3.1) or a DPoP key (RFC 9449 §6).
type Binding struct {
	X5T string `json:"x5t#S256,omitempty"`
	JKT string `json:"jkt,omitempty"`
}

func cnf(bound []Binding) *Binding {
	for _, b := range bound {
		if b.X5T != "" || b.JKT != "" {
			return &b
		}
	}
	return nil
}

// CertThumbprint is a certificate's x5t#S256: base64url(SHA-256(DER)).
func CertThumbprint(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// AuthenticateTLS checks a tls_client_auth client (RFC 8705 §2.1.1): the
// TLS layer verified cert against the configured client CAs, and its
// subject DN must be the one registered for client id. A disabled or
// deleted client is ErrInvalidClient.
func (s *Service) AuthenticateTLS(ctx context.Context, id string, cert *x509.Certificate) (store.Client, error) {
	// The token endpoint signs right after: pick up a rotated signing key
	// as verification does.
	s.refresh(ctx)
	if err := s.throttled(ctx, id); err != nil {
		return store.Client{}, err
	}
	c, err := s.store.Client(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Client{}, err
	}
	if err != nil || c.AuthMethod != MethodTLSClientAuth || cert == nil || cert.Subject.String() != c.TLSSubject {
		if ferr := s.countFailure(ctx, id); ferr != nil {
			return store.Client{}, ferr
		}
		return store.Client{}, ErrInvalidClient
	}
	if !c.DisabledAt.IsZero() {
		return store.Client{}, ErrInvalidClient
	}
	return c, nil
}
