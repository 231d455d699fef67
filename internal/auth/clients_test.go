package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store/sqlite"
)

func testService(t *testing.T) *Service {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "resetd.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	key, _ := seal.New(seal.Generate())
	s, err := New(t.Context(), st, key, "https://resetd.example", time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func set(t *testing.T, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestClientSpecRefusesWhatSection15DoesNot allow: private or symmetric
// keys, other curves, short RSA keys, an empty or unparsable set, and
// options of one method given to another.
func TestClientSpecRefusesWhatSection15DoesNotAllow(t *testing.T) {
	t.Parallel()
	s := testService(t)
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	scopes := []string{ScopeUsersRead}
	for _, c := range []struct {
		name string
		spec ClientSpec
		ok   bool
	}{
		{"P-256 public key", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: set(t, jose.JSONWebKey{Key: &p256.PublicKey})}, true},
		{"Ed25519 public key", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: set(t, jose.JSONWebKey{Key: edPub})}, true},
		{"a P-256 private key", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: set(t, jose.JSONWebKey{Key: p256})}, false},
		{"an Ed25519 private key", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: set(t, jose.JSONWebKey{Key: edPriv})}, false},
		{"a symmetric key", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: set(t, jose.JSONWebKey{Key: []byte("0123456789abcdef0123456789abcdef")})}, false},
		{"P-384", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: set(t, jose.JSONWebKey{Key: &p384.PublicKey})}, false},
		{"RSA 1024", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: set(t, jose.JSONWebKey{Key: &rsa1024.PublicKey})}, false},
		{"empty set", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: []byte(`{"keys":[]}`)}, false},
		{"not JSON", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: []byte(`-----BEGIN PUBLIC KEY-----`)}, false},
		{"no JWK Set", ClientSpec{AuthMethod: MethodPrivateKeyJWT}, false},
		{"private_key_jwt with a TLS subject", ClientSpec{AuthMethod: MethodPrivateKeyJWT, JWKS: set(t, jose.JSONWebKey{Key: edPub}), TLSSubject: "CN=x"}, false},
		{"tls_client_auth", ClientSpec{AuthMethod: MethodTLSClientAuth, TLSSubject: "CN=core,O=Bank"}, true},
		{"tls_client_auth without a DN", ClientSpec{AuthMethod: MethodTLSClientAuth, TLSSubject: "core"}, false},
		{"tls_client_auth with a JWK Set", ClientSpec{AuthMethod: MethodTLSClientAuth, TLSSubject: "CN=x", JWKS: set(t, jose.JSONWebKey{Key: edPub})}, false},
		{"a secret client with a JWK Set", ClientSpec{JWKS: set(t, jose.JSONWebKey{Key: edPub})}, false},
		{"an unknown method", ClientSpec{AuthMethod: "none"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.spec.InstitutionID, c.spec.Scopes = "acme", scopes
			id, sec, err := s.CreateClientSpec(t.Context(), c.spec)
			if c.ok {
				if err != nil || id == "" || sec != "" {
					t.Fatalf("id %q secret %q err %v", id, sec, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidClientSpec) {
				t.Fatalf("err = %v, want ErrInvalidClientSpec", err)
			}
		})
	}
}

func TestSameHTU(t *testing.T) {
	t.Parallel()
	const want = "https://resetd.example/a/b"
	for htu, same := range map[string]bool{
		"https://resetd.example/a/b":       true,
		"HTTPS://ReSetD.example/a/b":       true,
		"https://resetd.example:443/a/b":   true,
		"https://resetd.example/a/b?x=1#f": true,
		"https://resetd.example/a/c":       false,
		"http://resetd.example/a/b":        false,
		"https://resetd.example:8443/a/b":  false,
		"https://evil.example/a/b":         false,
		"https://u@resetd.example/a/b":     false,
		"/a/b":                             false,
		"https://resetd.example/a/b/":      false,
		"https://resetd.example/a/%62":     false,
	} {
		if got := sameHTU(htu, want); got != same {
			t.Errorf("sameHTU(%q) = %v, want %v", htu, got, same)
		}
	}
}
