package auth

import (
	"path/filepath"
	"testing"
	"time"

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

// BenchmarkHashSecret is the keyed hash a client secret is checked with.
func BenchmarkHashSecret(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = hashSecret("Oy_qCz7tXbq3vV1n0mJ9x0lS3o2oQk8pQyW3b1a2c3d")
	}
}
