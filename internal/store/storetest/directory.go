package storetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Institutions, users, password history and settings.

func testInstitutions(t *testing.T, s store.Store) {
	view(t, s, func(tx store.ReadTx) error {
		_, err := tx.Institution(ctx(t), "nope")
		wantErr(t, "Institution of an unknown id", err, store.ErrNotFound)
		_, err = tx.DefaultInstitution(ctx(t))
		wantErr(t, "DefaultInstitution with none", err, store.ErrNotFound)
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		_, err := tx.LockInstitution(ctx(t), "nope")
		wantErr(t, "LockInstitution of an unknown id", err, store.ErrNotFound)
		wantErr(t, "SetSettings of an unknown id", tx.SetSettings(ctx(t), "nope", []byte(`{}`), t0), store.ErrNotFound)
		return nil
	})

	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutInstitution(ctx(t), store.Institution{ID: "a", Settings: []byte(`{"displayName":"A"}`), CreatedAt: t0, UpdatedAt: t0}); err != nil {
			return err
		}
		return tx.PutInstitution(ctx(t), store.Institution{ID: "b", IsDefault: true, Settings: []byte(`{}`), CreatedAt: t0, UpdatedAt: t0})
	})
	view(t, s, func(tx store.ReadTx) error {
		a, err := tx.Institution(ctx(t), "a")
		if err != nil {
			return err
		}
		if a.ID != "a" || a.IsDefault || string(a.Settings) != `{"displayName":"A"}` {
			t.Errorf("institution a = %+v", a)
		}
		sameTime(t, "created", a.CreatedAt, t0)
		sameTime(t, "updated", a.UpdatedAt, t0)
		d, err := tx.DefaultInstitution(ctx(t))
		if err != nil || d.ID != "b" {
			t.Errorf("default = %q, %v; want b", d.ID, err)
		}
		return nil
	})
	// Making a the default takes the flag from b; a second put keeps the
	// creation time.
	update(t, s, func(tx store.Tx) error {
		return tx.PutInstitution(ctx(t), store.Institution{ID: "a", IsDefault: true, Settings: []byte(`{"displayName":"A2"}`), CreatedAt: t1, UpdatedAt: t1})
	})
	update(t, s, func(tx store.Tx) error {
		if err := tx.SetSettings(ctx(t), "a", []byte(`{"displayName":"A3"}`), t2); err != nil {
			return err
		}
		a, err := tx.LockInstitution(ctx(t), "a")
		if err != nil {
			return err
		}
		if !a.IsDefault || string(a.Settings) != `{"displayName":"A3"}` {
			t.Errorf("after SetSettings: %+v", a)
		}
		sameTime(t, "created after upsert", a.CreatedAt, t0)
		sameTime(t, "updated after SetSettings", a.UpdatedAt, t2)
		return nil
	})
	view(t, s, func(tx store.ReadTx) error {
		d, err := tx.DefaultInstitution(ctx(t))
		if err != nil || d.ID != "a" {
			t.Errorf("default = %q, %v; want a", d.ID, err)
		}
		b, err := tx.Institution(ctx(t), "b")
		if err != nil || b.IsDefault {
			t.Errorf("b still default: %+v %v", b, err)
		}
		return nil
	})
}

func testUsers(t *testing.T, s store.Store) {
	putInstitution(t, s, "i1", false)
	putInstitution(t, s, "i2", false)
	t1, t2 := t0.Add(time.Hour), t0.Add(2*time.Hour)
	view(t, s, func(tx store.ReadTx) error {
		_, err := tx.User(ctx(t), "i1", "u1")
		wantErr(t, "User unknown", err, store.ErrNotFound)
		_, err = tx.UserByUsername(ctx(t), "i1", "jane")
		wantErr(t, "UserByUsername unknown", err, store.ErrNotFound)
		return nil
	})
	u := store.User{
		InstitutionID: "i1", ID: "u1", Username: "Jane.Doe", Email: "jane@example.com", Phone: "+14155550100",
		Status: "active", PasswordHash: "$argon2id$h1", CreatedAt: t0, UpdatedAt: t0,
		EmailChangedAt: t1, LockedUntil: t2, Facts: map[string]string{"dateOfBirth": "00ff"}, Locale: "fr",
	}
	update(t, s, func(tx store.Tx) error {
		created, err := tx.PutUser(ctx(t), u)
		if err != nil || !created {
			t.Errorf("first PutUser: created=%v err=%v", created, err)
		}
		u.Email, u.UpdatedAt, u.Locale = "jane@new.example", t1, "pt-BR"
		created, err = tx.PutUser(ctx(t), u)
		if err != nil || created {
			t.Errorf("second PutUser: created=%v err=%v", created, err)
		}
		return nil
	})
	view(t, s, func(tx store.ReadTx) error {
		for _, name := range []string{"Jane.Doe", " jane.doe ", "JANE.DOE"} {
			got, err := tx.UserByUsername(ctx(t), "i1", name)
			if err != nil || got.ID != "u1" {
				t.Errorf("UserByUsername(%q) = %q, %v", name, got.ID, err)
			}
		}
		_, err := tx.UserByUsername(ctx(t), "i2", "jane.doe")
		wantErr(t, "username in another institution", err, store.ErrNotFound)
		got, err := tx.User(ctx(t), "i1", "u1")
		if err != nil {
			return err
		}
		if got.Username != "Jane.Doe" || got.Email != "jane@new.example" || got.Phone != "+14155550100" || got.Status != "active" ||
			got.PasswordHash != "$argon2id$h1" || got.Facts["dateOfBirth"] != "00ff" || len(got.Facts) != 1 || got.Locale != "pt-BR" {
			t.Errorf("user = %+v", got)
		}
		sameTime(t, "created", got.CreatedAt, t0)
		sameTime(t, "updated", got.UpdatedAt, t1)
		sameTime(t, "email changed", got.EmailChangedAt, t1)
		sameTime(t, "phone changed", got.PhoneChangedAt, time.Time{})
		sameTime(t, "locked until", got.LockedUntil, t2)
		// The same user and its institution, in one read.
		in, both, err := tx.InstitutionUser(ctx(t), "i1", "u1")
		if err != nil {
			return err
		}
		if in.ID != "i1" || !reflect.DeepEqual(both, got) {
			t.Errorf("InstitutionUser = %+v, %+v; want i1 and %+v", in, both, got)
		}
		if alone, err := tx.Institution(ctx(t), "i1"); err != nil || !reflect.DeepEqual(alone, in) {
			t.Errorf("InstitutionUser's institution %+v, Institution's %+v (%v)", in, alone, err)
		}
		for _, c := range [][2]string{{"i2", "u1"}, {"i1", "nope"}, {"nope", "u1"}} {
			_, _, err := tx.InstitutionUser(ctx(t), c[0], c[1])
			wantErr(t, "InstitutionUser "+c[0]+"/"+c[1], err, store.ErrNotFound)
		}
		// The store's own read, outside a transaction, answers the same.
		in2, both2, err := s.InstitutionUser(ctx(t), "i1", "u1")
		if err != nil || !reflect.DeepEqual(in2, in) || !reflect.DeepEqual(both2, both) {
			t.Errorf("Store.InstitutionUser = %+v, %+v, %v; want %+v, %+v", in2, both2, err, in, both)
		}
		for _, c := range [][2]string{{"i2", "u1"}, {"i1", "nope"}, {"nope", "u1"}, {"i1", "u1\x00"}} {
			_, _, err := s.InstitutionUser(ctx(t), c[0], c[1])
			wantErr(t, "Store.InstitutionUser "+c[0]+"/"+c[1], err, store.ErrNotFound)
		}
		return nil
	})
	// The same username is free in another institution; a rename frees
	// the old one.
	putUser(t, s, "i2", "u1", "jane.doe")
	update(t, s, func(tx store.Tx) error {
		u.Username = "jd"
		_, err := tx.PutUser(ctx(t), u)
		return err
	})
	putUser(t, s, "i1", "u2", "jane.doe")

	update(t, s, func(tx store.Tx) error {
		wantErr(t, "SetPassword unknown", tx.SetPassword(ctx(t), "i1", "nope", "h", t2), store.ErrNotFound)
		wantErr(t, "LockUser unknown", tx.LockUser(ctx(t), "i1", "nope", t2), store.ErrNotFound)
		if err := tx.SetPassword(ctx(t), "i1", "u2", "$argon2id$h2", t2); err != nil {
			return err
		}
		return tx.LockUser(ctx(t), "i1", "u2", t2)
	})
	view(t, s, func(tx store.ReadTx) error {
		got, err := tx.User(ctx(t), "i1", "u2")
		if err != nil {
			return err
		}
		if got.PasswordHash != "$argon2id$h2" || len(got.Facts) != 0 {
			t.Errorf("after SetPassword: %+v", got)
		}
		sameTime(t, "updated by SetPassword", got.UpdatedAt, t2)
		sameTime(t, "locked until", got.LockedUntil, t2)
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		if err := tx.DeleteUser(ctx(t), "i1", "u2"); err != nil {
			return err
		}
		wantErr(t, "second DeleteUser", tx.DeleteUser(ctx(t), "i1", "u2"), store.ErrNotFound)
		_, err := tx.User(ctx(t), "i1", "u2")
		wantErr(t, "deleted user", err, store.ErrNotFound)
		return nil
	})
	view(t, s, func(tx store.ReadTx) error {
		if _, err := tx.User(ctx(t), "i2", "u1"); err != nil {
			t.Errorf("deleting i1/u2 touched i2/u1: %v", err)
		}
		return nil
	})
}

// A conflict is an answer, not a broken transaction: the caller may go on
// and commit the rest (SQLite allows it; PostgreSQL needs a savepoint).
func testUsernameConflict(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putUser(t, s, "i", "u1", "jane")
	update(t, s, func(tx store.Tx) error {
		_, err := tx.PutUser(ctx(t), store.User{InstitutionID: "i", ID: "u2", Username: " JANE", Status: "active", CreatedAt: t0, UpdatedAt: t0})
		wantErr(t, "PutUser with a taken username", err, store.ErrConflict)
		_, err = tx.PutUser(ctx(t), store.User{InstitutionID: "i", ID: "u2", Username: "john", Status: "active", CreatedAt: t0, UpdatedAt: t0})
		return err
	})
	view(t, s, func(tx store.ReadTx) error {
		u, err := tx.User(ctx(t), "i", "u2")
		if err != nil || u.Username != "john" {
			t.Errorf("after a conflict in the same transaction: %+v %v", u, err)
		}
		return nil
	})
}

func testPasswordHistory(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putUser(t, s, "i", "u", "u")
	putUser(t, s, "i", "v", "v")
	update(t, s, func(tx store.Tx) error {
		for i := 1; i <= 5; i++ {
			if err := tx.AddPasswordHistory(ctx(t), "i", "u", fmt.Sprintf("h%d", i), t0.Add(time.Duration(i)*time.Second), 3); err != nil {
				return err
			}
		}
		return tx.AddPasswordHistory(ctx(t), "i", "v", "v1", t0, 3)
	})
	history := func(user string, n int) []string {
		var out []string
		view(t, s, func(tx store.ReadTx) (err error) {
			out, err = tx.PasswordHistory(ctx(t), "i", user, n)
			return err
		})
		return out
	}
	if got := history("u", 10); !slices.Equal(got, []string{"h5", "h4", "h3"}) {
		t.Errorf("history after trimming to 3 = %v, want [h5 h4 h3]", got)
	}
	if got := history("u", 2); !slices.Equal(got, []string{"h5", "h4"}) {
		t.Errorf("history(2) = %v", got)
	}
	if got := history("u", 0); len(got) != 0 {
		t.Errorf("history(0) = %v", got)
	}
	if got := history("v", 10); !slices.Equal(got, []string{"v1"}) {
		t.Errorf("another user's history = %v", got)
	}
	update(t, s, func(tx store.Tx) error {
		return tx.AddPasswordHistory(ctx(t), "i", "u", "h6", t0, 0)
	})
	if got := history("u", 10); len(got) != 0 {
		t.Errorf("history after keep=0 = %v", got)
	}
	// A deleted user's history goes with them.
	update(t, s, func(tx store.Tx) error { return tx.DeleteUser(ctx(t), "i", "v") })
	putUser(t, s, "i", "v", "v")
	if got := history("v", 10); len(got) != 0 {
		t.Errorf("history of a re-created user = %v", got)
	}
}

// Settings are a JSON document changed by read-modify-write: under the
// institution's lock, concurrent writers of different fields (on any
// replicas) never lose each other's change.
func testConcurrentSettings(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	race(concurrency, func(i int) {
		err := s.Update(ctx(t), func(tx store.Tx) error {
			in, err := tx.LockInstitution(ctx(t), "i")
			if err != nil {
				return err
			}
			m := map[string]int{}
			if err := json.Unmarshal(in.Settings, &m); err != nil {
				return err
			}
			m[fmt.Sprintf("field%02d", i)] = i
			b, _ := json.Marshal(m)
			return tx.SetSettings(ctx(t), "i", b, t0)
		})
		if err != nil {
			t.Errorf("settings update %d: %v", i, err)
		}
	})
	view(t, s, func(tx store.ReadTx) error {
		in, err := tx.Institution(ctx(t), "i")
		if err != nil {
			return err
		}
		m := map[string]int{}
		if err := json.Unmarshal(in.Settings, &m); err != nil {
			return err
		}
		if len(m) != concurrency {
			t.Errorf("%d concurrent settings updates left %d fields: %s", concurrency, len(m), in.Settings)
		}
		return nil
	})
}
