package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
)

func benchService(b *testing.B) (*Service, store.Client) {
	b.Helper()
	st, err := sqlite.Open(b.Context(), filepath.Join(b.TempDir(), "resetd.db"), sqlite.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	key, err := seal.New(seal.Generate())
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(b.Context(), st, key, "http://127.0.0.1:8080", time.Now)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.EnsureSigningKey(b.Context()); err != nil {
		b.Fatal(err)
	}
	return s, store.Client{ID: "rc_bench", InstitutionID: "bench", Scopes: AllScopes}
}

// BenchmarkIssue signs an access token (EdDSA JWT): the token endpoint's
// work after the client is authenticated.
func BenchmarkIssue(b *testing.B) {
	s, c := benchService(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Issue(c, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify checks a bearer token without a database read: what
// every authorised API request pays.
func BenchmarkVerify(b *testing.B) {
	s, c := benchService(b)
	tok, _, err := s.Issue(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyFirstUse checks a bearer token not seen before: the
// signature and the JWT decoding, which BenchmarkVerify's repeated token
// skips through the verified-token cache.
func BenchmarkVerifyFirstUse(b *testing.B) {
	s, c := benchService(b)
	tok, _, err := s.Issue(c, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s.verified.mu.Lock()
		s.verified.entries, s.verified.order = nil, nil
		s.verified.mu.Unlock()
		if _, err := s.Verify(b.Context(), tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashSecret is the keyed hash a client secret is checked with.
func BenchmarkHashSecret(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = hashSecret("Oy_qCz7tXbq3vV1n0mJ9x0lS3o2oQk8pQyW3b1a2c3d")
	}
}

// BenchmarkCheckDPoP verifies a fresh ES256 DPoP proof and records its
// jti in the shared store: the work every DPoP-bound API request adds.
func BenchmarkCheckDPoP(b *testing.B) {
	s, _ := benchService(b)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		b.Fatal(err)
	}
	const u = "http://127.0.0.1:8080/a/password-reset/api/v0/institutions/acme/settings"
	proofs := make([]string, 0, 1024)
	mk := func(i int) string {
		p, err := jwt.Signed(signer).Claims(map[string]any{"jti": fmt.Sprint("j", i), "htm": "GET", "htu": u, "iat": time.Now().Unix()}).Serialize()
		if err != nil {
			b.Fatal(err)
		}
		return p
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		if len(proofs) == 0 {
			for range 1024 {
				proofs = append(proofs, mk(i))
				i++
			}
		}
		p := proofs[len(proofs)-1]
		proofs = proofs[:len(proofs)-1]
		b.StartTimer()
		if _, err := s.CheckDPoP(b.Context(), p, "GET", u, ""); err != nil {
			b.Fatal(err)
		}
	}
}
