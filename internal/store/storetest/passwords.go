package storetest

// Conformance of what SPEC §13 (imported password hashes) asks of a backend:
// an import row's lookup, the compare-and-swap rehash, users per scheme.

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/store"
)

func testUsersByID(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putInstitution(t, s, "j", false)
	putUser(t, s, "i", "u1", "one")
	putUser(t, s, "i", "u2", "two")
	putUser(t, s, "j", "u3", "three")
	view(t, s, func(tx store.ReadTx) error {
		got, err := tx.UsersByID(ctx(t), "i", []string{"u1", "u3", "nope", "u2", "u1", "u1\x00", "\xff", `"],"x`})
		if err != nil {
			return err
		}
		if len(got) != 2 || got["u1"].Username != "one" || got["u2"].Username != "two" {
			t.Errorf("UsersByID = %+v, want u1 and u2 only (u3 is another institution's)", got)
		}
		none, err := tx.UsersByID(ctx(t), "i", nil)
		if err != nil || len(none) != 0 {
			t.Errorf("UsersByID(nil) = %v, %v", none, err)
		}
		return nil
	})
}

func testUserAndUsernameOwner(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putInstitution(t, s, "j", false)
	putUser(t, s, "i", "u1", "Jane.Doe")
	putUser(t, s, "i", "u2", "john")
	putUser(t, s, "j", "u3", "carol")
	for _, c := range []struct {
		name, id, username string
		wantID, wantOwner  string
	}{
		{"neither", "u9", "nobody", "", ""},
		{"id only", "u1", "new.name", "u1", ""},
		{"same user, username in another case", "u1", "jane.doe", "u1", "u1"},
		{"username of another user", "u9", "john", "", "u2"},
		{"id and another user's username", "u1", "JOHN", "u1", "u2"},
		{"another institution's user", "u3", "carol", "", ""},
		{"hostile", "u1\x00", "\xff", "", ""},
	} {
		view(t, s, func(tx store.ReadTx) error {
			u, owner, err := tx.UserAndUsernameOwner(ctx(t), "i", c.id, c.username)
			if err != nil {
				return err
			}
			gotID := ""
			if u != nil {
				gotID = u.ID
				if u.Username == "" || u.InstitutionID != "i" {
					t.Errorf("%s: incomplete user %+v", c.name, u)
				}
			}
			if gotID != c.wantID || owner != c.wantOwner {
				t.Errorf("%s: user %q owner %q, want %q %q", c.name, gotID, owner, c.wantID, c.wantOwner)
			}
			return nil
		})
	}
}

func testRehashPassword(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	putInstitution(t, s, "j", false)
	t1 := t0.Add(time.Second)
	for _, inst := range []string{"i", "j"} {
		putUser(t, s, inst, "u", "u")
		update(t, s, func(tx store.Tx) error {
			if err := tx.SetPassword(ctx(t), inst, "u", "$2b$old", t1); err != nil {
				return err
			}
			if err := tx.AddPasswordHistory(ctx(t), inst, "u", "$2b$older", t0, 5); err != nil {
				return err
			}
			return tx.AddPasswordHistory(ctx(t), inst, "u", "$2b$old", t1, 5)
		})
	}
	var replaced bool
	update(t, s, func(tx store.Tx) (err error) {
		replaced, err = tx.RehashPassword(ctx(t), "i", "u", "$2b$old", "$argon2id$new")
		return err
	})
	if !replaced {
		t.Error("RehashPassword of the current hash reported no replacement")
	}
	check := func(inst, wantHash string, wantHistory []string) {
		t.Helper()
		view(t, s, func(tx store.ReadTx) error {
			u, err := tx.User(ctx(t), inst, "u")
			if err != nil {
				return err
			}
			h, err := tx.PasswordHistory(ctx(t), inst, "u", 10)
			if u.PasswordHash != wantHash || !slices.Equal(h, wantHistory) {
				t.Errorf("%s: hash %q history %v, want %q %v", inst, u.PasswordHash, h, wantHash, wantHistory)
			}
			sameTime(t, "updated_at untouched by a rehash", u.UpdatedAt, t1)
			return err
		})
	}
	check("i", "$argon2id$new", []string{"$argon2id$new", "$2b$older"})
	check("j", "$2b$old", []string{"$2b$old", "$2b$older"}) // another tenant's same hash is left alone
	// An older history entry upgrades without touching the current hash.
	update(t, s, func(tx store.Tx) (err error) {
		replaced, err = tx.RehashPassword(ctx(t), "i", "u", "$2b$older", "$argon2id$older")
		return err
	})
	if replaced {
		t.Error("RehashPassword of a history entry reported the current hash replaced")
	}
	check("i", "$argon2id$new", []string{"$argon2id$new", "$argon2id$older"})
	// A hash changed meanwhile is not overwritten by a stale upgrade.
	update(t, s, func(tx store.Tx) (err error) {
		replaced, err = tx.RehashPassword(ctx(t), "i", "u", "$2b$old", "$argon2id$stale")
		return err
	})
	if replaced {
		t.Error("stale RehashPassword reported a replacement")
	}
	check("i", "$argon2id$new", []string{"$argon2id$new", "$argon2id$older"})
}

func testPasswordSchemes(t *testing.T, s store.Store) {
	putInstitution(t, s, "i", false)
	const current = "$argon2id$v=19$m=19456,t=2,p=1$"
	hashes := map[string]string{
		"a": current + "c2FsdA$a2V5", "b": "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$a2V5",
		"c": "$argon2i$v=19$m=65536,t=2,p=1$c2FsdA$a2V5", "d": "$2a$10$x", "e": "$2b$12$x", "f": "$2y$04$x",
		"g": "$pbkdf2-sha256$i=1000,l=32$x$y", "h": "$pbkdf2-sha512$i=1000,l=32$x$y", "k": "$scrypt$ln=14,r=8,p=1$x$y",
		"m": "$md5$x",
	}
	for id, h := range hashes {
		putUser(t, s, "i", id, id)
		update(t, s, func(tx store.Tx) error { return tx.SetPassword(ctx(t), "i", id, h, t0) })
	}
	putUser(t, s, "i", "n", "n") // no password
	got, err := s.PasswordSchemes(ctx(t), current)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"argon2id": 1, "argon2id-old-params": 1, "argon2i": 1, "bcrypt": 3, "pbkdf2-sha256": 1, "pbkdf2-sha512": 1, "scrypt": 1, "other": 1, "none": 1}
	if !maps.Equal(got, want) {
		t.Errorf("PasswordSchemes = %v, want %v", got, want)
	}
}
