package auth

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store/sqlite"
)

// clockService is a Service on a clock the test moves.
func clockService(t *testing.T) (*Service, func(time.Duration)) {
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
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := New(t.Context(), st, key, "https://resetd.example", clock)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureSigningKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}

// A token verified once is remembered, but nothing that can change after
// its first check is: each of these must refuse a token that was accepted
// (and so cached) a moment before.
func TestVerifiedTokenIsRecheckedOnEveryUse(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change func(t *testing.T, s *Service, clientID, kid string, advance func(time.Duration))
	}{
		{"client disabled", func(t *testing.T, s *Service, id, _ string, _ func(time.Duration)) {
			if err := s.DisableClient(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}},
		{"client deleted", func(t *testing.T, s *Service, id, _ string, _ func(time.Duration)) {
			if err := s.DeleteClient(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}},
		{"signing key retired", func(t *testing.T, s *Service, _, kid string, advance func(time.Duration)) {
			advance(time.Second) // the new key is the newer
			if err := s.Rotate(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := s.Retire(t.Context(), kid); err != nil {
				t.Fatal(err)
			}
		}},
		{"token expired", func(t *testing.T, s *Service, _, _ string, advance func(time.Duration)) {
			advance(TokenTTL + time.Hour)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, advance := clockService(t)
			id, _, err := s.CreateClient(t.Context(), "acme", "c", []string{ScopeUsersRead})
			if err != nil {
				t.Fatal(err)
			}
			cl, err := s.client(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			tok, _, err := s.Issue(cl, nil)
			if err != nil {
				t.Fatal(err)
			}
			for range 2 { // the second is served from the cache
				got, err := s.Verify(t.Context(), tok)
				if err != nil || got.ClientID != id || got.InstitutionID != "acme" {
					t.Fatalf("fresh token: %+v, %v", got, err)
				}
			}
			kid := s.signKID
			c.change(t, s, id, kid, advance)
			if _, err := s.Verify(t.Context(), tok); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("after %s: err = %v, want ErrInvalidToken", c.name, err)
			}
		})
	}
}

// A remembered token does not vouch for another string: a token with one
// byte of its signature changed is refused although its header and
// claims are those of a cached one; and a caller changing the scopes it
// was given changes nothing for the next request.
func TestVerifiedCacheIsPerTokenString(t *testing.T) {
	t.Parallel()
	s, _ := clockService(t)
	id, _, err := s.CreateClient(t.Context(), "acme", "c", []string{ScopeUsersRead})
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := s.client(t.Context(), id)
	tok, _, err := s.Issue(cl, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	got.Scopes[0] = "https://jackhenry.com/password-reset/password-reset.write"
	b := []byte(tok)
	last := len(b) - 2
	if b[last] == 'A' {
		b[last] = 'B'
	} else {
		b[last] = 'A'
	}
	if _, err := s.Verify(t.Context(), string(b)); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("tampered token: err = %v, want ErrInvalidToken", err)
	}
	again, err := s.Verify(t.Context(), tok)
	if err != nil || len(again.Scopes) != 1 || again.Scopes[0] != ScopeUsersRead {
		t.Fatalf("cached claims changed by a caller: %+v, %v", again, err)
	}
}

// The cache stays bounded however many tokens it sees.
func TestVerifiedCacheIsBounded(t *testing.T) {
	t.Parallel()
	var v verified
	for i := range 3 * verifiedCap {
		v.put(tokenDigest(string(rune(i))+"x"), verifiedToken{})
	}
	if len(v.entries) > verifiedCap || len(v.order) != len(v.entries) {
		t.Fatalf("%d entries, %d in order (cap %d)", len(v.entries), len(v.order), verifiedCap)
	}
}
