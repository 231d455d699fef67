package password

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// rangeServer is a local Pwned Passwords range API on loopback, over
// real HTTP: it knows the passwords given, answers each prefix with their
// suffixes among padding lines (count 0), and records the paths asked.
// paddedOnly appears in every padded answer, with count 0.
const paddedOnly = "padding-is-not-a-breach"

type rangeServer struct {
	*httptest.Server
	mu    sync.Mutex
	asked []string
}

func newRangeServer(t *testing.T, breached ...string) *rangeServer {
	t.Helper()
	known := map[string][]string{}
	for _, pw := range breached {
		sum := sha1.Sum([]byte(pw))
		d := strings.ToUpper(hex.EncodeToString(sum[:]))
		known[d[:5]] = append(known[d[:5]], d[5:])
	}
	rs := &rangeServer{}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		rs.asked = append(rs.asked, r.URL.Path)
		rs.mu.Unlock()
		prefix, ok := strings.CutPrefix(r.URL.Path, "/range/")
		if !ok || len(prefix) != 5 {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Add-Padding") == "true" {
			// Padding lines carry count 0: the suffix of paddedOnly is
			// one, a false match if counts were ignored.
			sum := sha1.Sum([]byte(paddedOnly))
			fmt.Fprintf(w, "%s:0\r\n", strings.ToUpper(hex.EncodeToString(sum[:]))[5:])
		}
		for _, s := range known[prefix] {
			fmt.Fprintf(w, "%s:42\r\n", s)
		}
		fmt.Fprintf(w, "%035X:3", 2)
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *rangeServer) paths() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Clone(rs.asked)
}

func TestRangeAPI(t *testing.T) {
	t.Parallel()
	const leaked = "violet-tractor-harbour"
	rs := newRangeServer(t, leaked)
	var unreachable atomic.Int64
	list := NewRangeAPI(rs.URL+"/", nil, func() { unreachable.Add(1) })

	found, err := list.Contains(t.Context(), leaked)
	if err != nil || !found {
		t.Fatalf("Contains(breached) = %v, %v; want true", found, err)
	}
	for _, fresh := range []string{"a-passphrase-nobody-leaked", paddedOnly} {
		found, err = list.Contains(t.Context(), fresh)
		if err != nil || found {
			t.Fatalf("Contains(%q) = %v, %v; want false", fresh, found, err)
		}
	}
	// Only the first five hex digits of the SHA-1 leave the process.
	sum := sha1.Sum([]byte(leaked))
	want := "/range/" + strings.ToUpper(hex.EncodeToString(sum[:]))[:5]
	if got := rs.paths(); len(got) != 3 || got[0] != want || len(got[1]) != len(want) {
		t.Errorf("paths asked %q, want %q first and two more 5-digit prefixes", got, want)
	}
	if unreachable.Load() != 0 {
		t.Errorf("unreachable counted %d times for answered look-ups", unreachable.Load())
	}

	// A list that is down, or answers an error, is an error and counted.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	}))
	t.Cleanup(down.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	for _, base := range []string{down.URL, closedURL} {
		before := unreachable.Load()
		found, err := NewRangeAPI(base, nil, func() { unreachable.Add(1) }).Contains(t.Context(), leaked)
		if err == nil || found || !strings.HasPrefix(err.Error(), "password: ") {
			t.Errorf("%s: Contains = %v, %v; want false and a password: error", base, found, err)
		}
		if unreachable.Load() != before+1 {
			t.Errorf("%s: unreachable not counted", base)
		}
	}
}

// The breached rule runs after every cheap rule and before the history:
// a password the cheap rules refuse is never looked up, a breached one is
// refused as "breached" without an argon2id verification, and an
// unreachable list lets the password through to the history.
func TestCheckBreached(t *testing.T) {
	t.Parallel()
	h := setup(t)
	const leaked = "violet-tractor-harbour"
	rs := newRangeServer(t, leaked, "abcdefghijkl")
	list := NewRangeAPI(rs.URL, nil, nil)
	reused, err := h.Hash(t.Context(), "another-good-passphrase")
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{MinLength: 12, History: 4, MinStrength: 3, Breaches: list}

	vs, err := p.Check(t.Context(), h, "abcdefghijkl", "", []string{"not a phc string"})
	if err != nil || !slices.Equal(codes(vs), []string{"weak"}) {
		t.Fatalf("weak: %q, %v", codes(vs), err)
	}
	if n := len(rs.paths()); n != 0 {
		t.Errorf("a password the cheap rules refuse was looked up (%d requests)", n)
	}
	// The history entry is malformed: reading it would be an error.
	vs, err = p.Check(t.Context(), h, leaked, "", []string{"not a phc string"})
	if err != nil || !slices.Equal(codes(vs), []string{"breached"}) {
		t.Fatalf("breached: %q, %v", codes(vs), err)
	}
	vs, err = p.Check(t.Context(), h, "another-good-passphrase", "", []string{reused})
	if err != nil || !slices.Equal(codes(vs), []string{"reused"}) {
		t.Fatalf("reused: %q, %v", codes(vs), err)
	}

	rs.Close()
	vs, err = p.Check(t.Context(), h, leaked, "", []string{reused})
	if err != nil || vs != nil {
		t.Fatalf("list unreachable: Check = %q, %v; want accepted", codes(vs), err)
	}
}
