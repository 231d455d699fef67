package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// OAuth clients, signing keys and meta values: the operations that stand
// alone, outside a transaction.

func testClients(t *testing.T, s store.Store) {
	_, err := s.Client(ctx(t), "nope")
	wantErr(t, "Client unknown", err, store.ErrNotFound)
	c := store.Client{ID: "rc_1", InstitutionID: "*", Name: "sync", SecretHash: []byte{0, 1, 2, 255}, Scopes: []string{"b:write", "a:read"}, CreatedAt: t0}
	if err := s.InsertClient(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "InsertClient of a known id", s.InsertClient(ctx(t), c), store.ErrConflict)
	got, err := s.Client(ctx(t), "rc_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != c.ID || got.InstitutionID != "*" || got.Name != "sync" || string(got.SecretHash) != string(c.SecretHash) || !slices.Equal(got.Scopes, c.Scopes) {
		t.Errorf("client = %+v", got)
	}
	sameTime(t, "client created", got.CreatedAt, t0)
}

func testSigningKeys(t *testing.T, s store.Store) {
	if keys, err := s.SigningKeys(ctx(t)); err != nil || len(keys) != 0 {
		t.Fatalf("signing keys of an empty store: %v %v", keys, err)
	}
	t1 := t0.Add(time.Hour)
	for _, k := range []store.SigningKey{
		{ID: "old", Alg: "EdDSA", Private: []byte("sealed-old"), Public: []byte("pub-old"), CreatedAt: t0, RetiredAt: t1},
		{ID: "new", Alg: "EdDSA", Private: []byte("sealed-new"), Public: []byte("pub-new"), CreatedAt: t1},
	} {
		if err := s.InsertSigningKey(ctx(t), k); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := s.SigningKeys(ctx(t))
	if err != nil || len(keys) != 2 || keys[0].ID != "new" || keys[1].ID != "old" {
		t.Fatalf("signing keys, newest first: %+v %v", keys, err)
	}
	if string(keys[0].Private) != "sealed-new" || string(keys[0].Public) != "pub-new" || keys[0].Alg != "EdDSA" {
		t.Errorf("key = %+v", keys[0])
	}
	sameTime(t, "new key created", keys[0].CreatedAt, t1)
	sameTime(t, "new key retired", keys[0].RetiredAt, time.Time{})
	sameTime(t, "old key retired", keys[1].RetiredAt, t1)
}

func testMeta(t *testing.T, s store.Store) {
	v, err := s.MetaSetIfAbsent(ctx(t), "k", []byte{1, 2, 3})
	if err != nil || string(v) != "\x01\x02\x03" {
		t.Fatalf("first MetaSetIfAbsent = %v, %v", v, err)
	}
	v, err = s.MetaSetIfAbsent(ctx(t), "k", []byte{9})
	if err != nil || string(v) != "\x01\x02\x03" {
		t.Errorf("second MetaSetIfAbsent = %v, %v; want the first value", v, err)
	}
	if v, _ := s.MetaSetIfAbsent(ctx(t), "other", []byte("x")); string(v) != "x" {
		t.Errorf("another key = %q", v)
	}
}

// Replicas starting together on an empty database must agree on one
// secret key: every caller gets the value that was stored.
func testConcurrentMeta(t *testing.T, s store.Store) {
	got := make([][]byte, concurrency)
	race(concurrency, func(i int) {
		v, err := s.MetaSetIfAbsent(ctx(t), "secret_key", fmt.Appendf(nil, "value-%d", i))
		if err != nil {
			t.Errorf("MetaSetIfAbsent: %v", err)
		}
		got[i] = v
	})
	stored, _ := s.MetaSetIfAbsent(ctx(t), "secret_key", []byte("late"))
	for i, v := range got {
		if string(v) != string(stored) {
			t.Fatalf("caller %d got %q, the store holds %q", i, v, stored)
		}
	}
}

func testClientAuthMethods(t *testing.T, s store.Store) {
	for _, c := range []store.Client{
		{ID: "rc_jwt", InstitutionID: "a", AuthMethod: "private_key_jwt", JWKS: []byte(`{"keys":[]}`), Scopes: []string{"s"}, CreatedAt: t0, RequireDPoP: true},
		{ID: "rc_tls", InstitutionID: "a", AuthMethod: "tls_client_auth", TLSSubject: "CN=bank,O=Bank", Scopes: []string{"s"}, CreatedAt: t0},
	} {
		if err := s.InsertClient(ctx(t), c); err != nil {
			t.Fatal(err)
		}
		got, err := s.Client(ctx(t), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.AuthMethod != c.AuthMethod || string(got.JWKS) != string(c.JWKS) || got.TLSSubject != c.TLSSubject || got.RequireDPoP != c.RequireDPoP || len(got.SecretHash) != 0 {
			t.Errorf("client = %+v, want %+v", got, c)
		}
	}
}

// testUseOnce: a value is accepted once until it expires, however many
// callers race for it; after expiry the key is free again.
func testUseOnce(t *testing.T, s store.Store) {
	exp := t0.Add(5 * time.Minute)
	if err := s.UseOnce(ctx(t), "jti:a", exp, t0); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "UseOnce replay", s.UseOnce(ctx(t), "jti:a", exp, t0.Add(time.Minute)), store.ErrConflict)
	if err := s.UseOnce(ctx(t), "jti:b", exp, t0); err != nil {
		t.Fatalf("another key: %v", err)
	}
	if err := s.UseOnce(ctx(t), "jti:a", exp.Add(time.Hour), exp.Add(time.Second)); err != nil {
		t.Fatalf("after expiry: %v", err)
	}

	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() { errs <- s.UseOnce(ctx(t), "jti:race", exp, t0) }()
	}
	won := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			won++
		case errors.Is(err, store.ErrConflict):
		default:
			t.Errorf("UseOnce race: %v", err)
		}
	}
	if won != 1 {
		t.Errorf("%d of %d concurrent UseOnce calls won, want 1", won, n)
	}
}
