package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"

	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// Client authentication methods (RFC 8414 token_endpoint_auth_methods).
const (
	MethodSecretBasic   = "client_secret_basic"
	MethodSecretPost    = "client_secret_post"
	MethodPrivateKeyJWT = "private_key_jwt"
	MethodTLSClientAuth = "tls_client_auth"
)

// AuthMethods are the methods the token endpoint accepts.
var AuthMethods = []string{MethodSecretBasic, MethodSecretPost, MethodPrivateKeyJWT, MethodTLSClientAuth}

// ClientSpec describes a client to create. AuthMethod "" (or either
// client_secret method) makes a client with a secret.
type ClientSpec struct {
	InstitutionID string
	Name          string
	Scopes        []string
	AuthMethod    string
	// JWKS is the public JWK Set of a private_key_jwt client: P-256,
	// Ed25519 or RSA keys of at least 2048 bits, no private parts.
	JWKS []byte
	// TLSSubject is the subject DN (RFC 2253, as
	// `openssl x509 -noout -subject -nameopt RFC2253` prints it) of a
	// tls_client_auth client's certificate.
	TLSSubject  string
	RequireDPoP bool
}

// CreateClientSpec makes a client as spec says. The returned secret is ""
// for a client that authenticates by key or certificate: it has none.
func (s *Service) CreateClientSpec(ctx context.Context, spec ClientSpec) (id, clientSecret string, err error) {
	for _, sc := range spec.Scopes {
		if !slices.Contains(AllScopes, sc) {
			return "", "", fmt.Errorf("%w: unknown scope %q", ErrInvalidScope, sc)
		}
	}
	if len(spec.Scopes) == 0 {
		return "", "", fmt.Errorf("%w: at least one scope", ErrInvalidScope)
	}
	c := store.Client{ID: "rc_" + secret.Hex(12), InstitutionID: spec.InstitutionID, Name: spec.Name,
		Scopes: slices.Compact(slices.Sorted(slices.Values(spec.Scopes))), CreatedAt: s.now(), RequireDPoP: spec.RequireDPoP}
	c.UpdatedAt = c.CreatedAt
	switch spec.AuthMethod {
	case "", MethodSecretBasic, MethodSecretPost:
		if len(spec.JWKS) > 0 || spec.TLSSubject != "" {
			return "", "", fmt.Errorf("%w: a secret client takes no JWK Set or TLS subject", ErrInvalidClientSpec)
		}
		clientSecret = secret.Token(32)
		c.SecretHash = hashSecret(clientSecret)
	case MethodPrivateKeyJWT:
		if spec.TLSSubject != "" {
			return "", "", fmt.Errorf("%w: private_key_jwt takes no TLS subject", ErrInvalidClientSpec)
		}
		if _, err := parseClientJWKS(spec.JWKS); err != nil {
			return "", "", err
		}
		c.AuthMethod, c.JWKS = MethodPrivateKeyJWT, spec.JWKS
	case MethodTLSClientAuth:
		if len(spec.JWKS) > 0 {
			return "", "", fmt.Errorf("%w: tls_client_auth takes no JWK Set", ErrInvalidClientSpec)
		}
		dn := strings.TrimSpace(spec.TLSSubject)
		if dn == "" || !strings.Contains(dn, "=") {
			return "", "", fmt.Errorf("%w: tls_client_auth needs the certificate's subject DN (e.g. CN=bank,O=Bank)", ErrInvalidClientSpec)
		}
		c.AuthMethod, c.TLSSubject = MethodTLSClientAuth, dn
	default:
		return "", "", fmt.Errorf("%w: unknown auth method %q (one of %s)", ErrInvalidClientSpec, spec.AuthMethod, strings.Join(AuthMethods, ", "))
	}
	if err := s.store.InsertClient(ctx, c); err != nil {
		return "", "", err
	}
	if err := s.auditClient(ctx, c.CreatedAt, "client.create", c); err != nil {
		return "", "", err
	}
	return c.ID, clientSecret, nil
}

// parseClientJWKS reads a client's public JWK Set and refuses what §15
// does not allow: private keys, curves other than P-256, short RSA keys,
// symmetric keys, an empty set.
func parseClientJWKS(raw []byte) (jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return set, fmt.Errorf("%w: the JWK Set does not parse: %v", ErrInvalidClientSpec, err)
	}
	if len(set.Keys) == 0 {
		return set, fmt.Errorf("%w: the JWK Set has no keys", ErrInvalidClientSpec)
	}
	for i, k := range set.Keys {
		if !k.IsPublic() {
			return set, fmt.Errorf("%w: key %d is private or symmetric; give the public key only", ErrInvalidClientSpec, i)
		}
		switch pub := k.Key.(type) {
		case *ecdsa.PublicKey:
			if pub.Curve != elliptic.P256() {
				return set, fmt.Errorf("%w: key %d: only the P-256 curve", ErrInvalidClientSpec, i)
			}
		case ed25519.PublicKey:
		case *rsa.PublicKey:
			if pub.N.BitLen() < 2048 {
				return set, fmt.Errorf("%w: key %d: RSA keys of at least 2048 bits", ErrInvalidClientSpec, i)
			}
		default:
			return set, fmt.Errorf("%w: key %d: unsupported key type", ErrInvalidClientSpec, i)
		}
	}
	return set, nil
}

// Credentials are what a token request presented to authenticate its
// client: a secret, a client assertion, or a verified TLS certificate
// with the client id.
type Credentials struct {
	ID     string
	Secret string
	// Assertion is a private_key_jwt client assertion; Audiences the
	// values its aud may name.
	Assertion string
	Audiences []string
	// Cert is the client certificate the TLS layer verified, if any.
	Cert *x509.Certificate
}

// AuthenticateCredentials authenticates a token request's client by
// whichever kind of credential it presented. A client is authenticated
// only by its registered method: a certificate does not stand in for a
// secret, nor a secret for a key.
func (s *Service) AuthenticateCredentials(ctx context.Context, c Credentials) (store.Client, error) {
	switch {
	case c.Assertion != "":
		cl, err := s.AuthenticateAssertion(ctx, c.Assertion, c.Audiences)
		if err == nil && c.ID != "" && c.ID != cl.ID {
			return store.Client{}, ErrInvalidClient
		}
		return cl, err
	case c.Secret != "":
		return s.Authenticate(ctx, c.ID, c.Secret)
	case c.Cert != nil:
		return s.AuthenticateTLS(ctx, c.ID, c.Cert)
	default:
		return store.Client{}, ErrInvalidClient
	}
}
