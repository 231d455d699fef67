package storetest

import (
	"slices"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Client management and key rotation (SPEC §9): state, old secrets and
// tombstones of clients, signing-key updates, meta reads, fact re-keying.

func testClientAdmin(t *testing.T, s store.Store) {
	for _, id := range []string{"rc_a", "rc_b", "rc_c"} {
		if err := s.InsertClient(ctx(t), store.Client{ID: id, InstitutionID: "acme", SecretHash: []byte("h-" + id), Scopes: []string{"a:read"}, CreatedAt: t0}); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.Client(ctx(t), "rc_a")
	if err != nil {
		t.Fatal(err)
	}
	t1 := t0.Add(time.Hour)
	c.Name, c.Scopes, c.DisabledAt, c.UpdatedAt = "renamed", []string{"b:write", "a:read"}, t1, t1
	c.OldSecretHash, c.OldSecretUntil, c.SecretHash = c.SecretHash, t1.Add(time.Hour), []byte("h-new")
	if err := s.UpdateClient(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	got, err := s.Client(ctx(t), "rc_a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "renamed" || !slices.Equal(got.Scopes, c.Scopes) || string(got.SecretHash) != "h-new" || string(got.OldSecretHash) != "h-rc_a" {
		t.Errorf("updated client = %+v", got)
	}
	sameTime(t, "disabled", got.DisabledAt, t1)
	sameTime(t, "old secret until", got.OldSecretUntil, t1.Add(time.Hour))
	wantErr(t, "UpdateClient unknown", s.UpdateClient(ctx(t), store.Client{ID: "nope"}), store.ErrNotFound)

	if err := s.DeleteClient(ctx(t), "rc_b", t1); err != nil {
		t.Fatal(err)
	}
	_, err = s.Client(ctx(t), "rc_b")
	wantErr(t, "Client deleted", err, store.ErrNotFound)
	wantErr(t, "DeleteClient twice", s.DeleteClient(ctx(t), "rc_b", t1), store.ErrNotFound)
	wantErr(t, "UpdateClient deleted", s.UpdateClient(ctx(t), store.Client{ID: "rc_b"}), store.ErrNotFound)
	cs, err := s.Clients(ctx(t))
	if err != nil || len(cs) != 2 || cs[0].ID == "rc_b" || cs[1].ID == "rc_b" {
		t.Errorf("Clients = %+v %v, want rc_a and rc_c", cs, err)
	}
	revoked, err := s.RevokedClients(ctx(t))
	slices.Sort(revoked)
	if err != nil || !slices.Equal(revoked, []string{"rc_a", "rc_b"}) {
		t.Errorf("RevokedClients = %v %v, want the disabled and the deleted", revoked, err)
	}
	// Enabling takes a client off the list.
	got.DisabledAt = time.Time{}
	if err := s.UpdateClient(ctx(t), got); err != nil {
		t.Fatal(err)
	}
	if revoked, _ := s.RevokedClients(ctx(t)); !slices.Equal(revoked, []string{"rc_b"}) {
		t.Errorf("RevokedClients after enabling = %v", revoked)
	}
}

func testKeyAdmin(t *testing.T, s store.Store) {
	k := store.SigningKey{ID: "k1", Alg: "EdDSA", Private: []byte("sealed-1"), Public: []byte("pub"), CreatedAt: t0}
	if err := s.InsertSigningKey(ctx(t), k); err != nil {
		t.Fatal(err)
	}
	k.Private, k.RetiredAt = []byte("resealed"), t0.Add(time.Hour)
	if err := s.UpdateSigningKey(ctx(t), k); err != nil {
		t.Fatal(err)
	}
	keys, err := s.SigningKeys(ctx(t))
	if err != nil || len(keys) != 1 || string(keys[0].Private) != "resealed" {
		t.Fatalf("signing keys after update: %+v %v", keys, err)
	}
	sameTime(t, "retired", keys[0].RetiredAt, t0.Add(time.Hour))
	wantErr(t, "UpdateSigningKey unknown", s.UpdateSigningKey(ctx(t), store.SigningKey{ID: "nope"}), store.ErrNotFound)

	_, err = s.Meta(ctx(t), "absent")
	wantErr(t, "Meta absent", err, store.ErrNotFound)
	for k, v := range map[string]string{"key_check:a": "1", "key_check:b": "2", "other": "3"} {
		if err := s.MetaPut(ctx(t), k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MetaPut(ctx(t), "other", []byte("4")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Meta(ctx(t), "other"); err != nil || string(v) != "4" {
		t.Errorf("Meta after a second put = %q %v", v, err)
	}
	m, err := s.MetaPrefix(ctx(t), "key_check:")
	if err != nil || len(m) != 2 || string(m["key_check:a"]) != "1" || string(m["key_check:b"]) != "2" {
		t.Errorf("MetaPrefix = %v %v", m, err)
	}

	// Facts re-keyed in a transaction; KeyedRecords sees them and the live OTP only.
	if err := s.Update(ctx(t), func(tx store.Tx) error {
		if err := tx.PutInstitution(ctx(t), store.Institution{ID: "acme", Settings: []byte("{}"), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		if _, err := tx.PutUser(ctx(t), store.User{InstitutionID: "acme", ID: "u1", Username: "u1", Status: "active", CreatedAt: t0, UpdatedAt: t0, Facts: map[string]string{"postalCode": "old"}}); err != nil {
			return err
		}
		if err := tx.SetFacts(ctx(t), "acme", "u1", map[string]string{"postalCode": "new"}); err != nil {
			return err
		}
		return tx.PutOTP(ctx(t), store.OTP{InstitutionID: "acme", UserID: "u1", MAC: []byte("otp-mac"), Channel: "email", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour), MaxAttempts: 5})
	}); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "SetFacts unknown user", s.Update(ctx(t), func(tx store.Tx) error {
		return tx.SetFacts(ctx(t), "acme", "nope", map[string]string{})
	}), store.ErrNotFound)
	r, err := s.KeyedRecords(ctx(t), t0.Add(time.Minute))
	if err != nil || !slices.Equal(r.Facts, []string{"new"}) || len(r.OTPs) != 1 || string(r.OTPs[0]) != "otp-mac" {
		t.Errorf("KeyedRecords = %+v %v", r, err)
	}
	if r, _ := s.KeyedRecords(ctx(t), t0.Add(2*time.Hour)); len(r.OTPs) != 0 {
		t.Errorf("an expired OTP counted: %+v", r)
	}

	// A deleted user's sealed contacts (tombstone) are keyed records too.
	if err := s.Update(ctx(t), func(tx store.Tx) error {
		return tx.PutTombstone(ctx(t), "acme", "gone", []byte("sealed-contacts"), t0)
	}); err != nil {
		t.Fatal(err)
	}
	r, err = s.KeyedRecords(ctx(t), t0.Add(time.Minute))
	if err != nil || len(r.Tombstones) != 1 {
		t.Fatalf("KeyedRecords tombstones = %+v %v", r.Tombstones, err)
	}
	if tb := r.Tombstones[0]; tb.InstitutionID != "acme" || tb.UserID != "gone" || string(tb.Sealed) != "sealed-contacts" {
		t.Errorf("KeyedRecords tombstone = %+v", tb)
	} else {
		sameTime(t, "tombstone DeletedAt", tb.DeletedAt, t0)
	}
}
