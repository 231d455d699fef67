package app_test

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/scrypt"

	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/store"
)

var stdB64 = base64.RawStdEncoding.EncodeToString

// legacyHashes are hashes made by implementations other than resetd's: the
// published vectors of the reference argon2, Ory Kratos's hasher, x/crypto
// and RFC 7914, and hashes x/crypto makes here for each scheme and cost.
func legacyHashes(t *testing.T) []struct{ name, hash, pw string } {
	t.Helper()
	salt := []byte("a legacy salt 16")
	const pw = "Legacy passphrase 1"
	rfcScrypt, err := hex.DecodeString("fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640")
	if err != nil {
		t.Fatal(err)
	}
	out := []struct{ name, hash, pw string }{
		{"argon2 reference argon2i", "$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", "password"},
		{"argon2 reference argon2id p=2", "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc", "password"},
		{"kratos bcrypt", "$2a$12$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6", "test"},
		{"kratos pbkdf2-sha256", "$pbkdf2-sha256$i=100000,l=32$1jP+5Zxpxgtee/iPxGgOz0RfE9/KJuDElP1ley4VxXc$QJxzfvdbHYBpydCbHoFg3GJEqMFULwskiuqiJctoYpI", "test"},
		{"kratos pbkdf2-sha512", "$pbkdf2-sha512$i=100000,l=32$bdHBpn7OWOivJMVJypy2UqR0UnaD5prQXRZevj/05YU$+wArTfv1a+bNGO1iZrmEdVjhA+lL11wF4/IxpgYfPwc", "test"},
		{"RFC 7914 scrypt", "$scrypt$ln=10,r=8,p=16$" + stdB64([]byte("NaCl")) + "$" + stdB64(rfcScrypt), "password"},
	}
	for _, cost := range []int{4, 6} {
		b, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
		if err != nil {
			t.Fatal(err)
		}
		for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
			out = append(out, struct{ name, hash, pw string }{fmt.Sprintf("x/crypto bcrypt %s%02d", prefix, cost), prefix + string(b[4:]), pw})
		}
	}
	for _, iter := range []int{1000, 27500} {
		out = append(out,
			struct{ name, hash, pw string }{fmt.Sprintf("x/crypto pbkdf2-sha256 i=%d", iter),
				fmt.Sprintf("$pbkdf2-sha256$i=%d,l=32$%s$%s", iter, stdB64(salt), stdB64(pbkdf2.Key([]byte(pw), salt, iter, 32, sha256.New))), pw},
			struct{ name, hash, pw string }{fmt.Sprintf("x/crypto pbkdf2-sha512 i=%d", iter),
				fmt.Sprintf("$pbkdf2-sha512$i=%d,l=64$%s$%s", iter, stdB64(salt), stdB64(pbkdf2.Key([]byte(pw), salt, iter, 64, sha512.New))), pw})
	}
	for _, c := range []struct{ ln, r, p int }{{10, 8, 1}, {12, 4, 2}} {
		k, err := scrypt.Key([]byte(pw), salt, 1<<c.ln, c.r, c.p, 32)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, struct{ name, hash, pw string }{fmt.Sprintf("x/crypto scrypt ln=%d r=%d p=%d", c.ln, c.r, c.p),
			fmt.Sprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", c.ln, c.r, c.p, stdB64(salt), stdB64(k)), pw})
	}
	out = append(out,
		struct{ name, hash, pw string }{"x/crypto argon2i", "$argon2i$v=19$m=2048,t=2,p=1$" + stdB64(salt) + "$" + stdB64(argon2.Key([]byte(pw), salt, 2, 2048, 1, 32)), pw},
		// argon2id, but not with the current parameters (cheapArgon2: m=1024,t=1,p=1).
		struct{ name, hash, pw string }{"x/crypto argon2id older params", "$argon2id$v=19$m=512,t=3,p=2$" + stdB64(salt) + "$" + stdB64(argon2.IDKey([]byte(pw), salt, 3, 512, 2, 32)), pw},
	)
	return out
}

func (h *harness) storedHash(inst, id string) string {
	h.t.Helper()
	var u store.User
	if err := h.app.Store.View(context.Background(), func(tx store.ReadTx) (err error) {
		u, err = tx.User(context.Background(), inst, id)
		return err
	}); err != nil {
		h.t.Fatal(err)
	}
	return u.PasswordHash
}

// TestLegacyHashVerifyAndRehash (SPEC §13): a hash brought from another
// system verifies with the right password (204) and not a wrong one (401);
// the first 204 replaces it by argon2id with the current parameters, which
// verifies the same password; a wrong password changes nothing.
func TestLegacyHashVerifyAndRehash(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	for i, c := range legacyHashes(t) {
		t.Run(c.name, func(t *testing.T) {
			id := fmt.Sprintf("legacy%d", i)
			verify := func(pw string) int {
				return h.do("POST", P+"/institutions/acme/users/"+id+"/password/verify", tok, map[string]string{"password": pw}).Status
			}
			h.putUser(tok, "acme", id, map[string]any{"username": id, "passwordHash": c.hash})
			if got := h.storedHash("acme", id); got != c.hash {
				t.Fatalf("stored %q, want the hash as given", got)
			}
			if s := verify(c.pw + "x"); s != 401 {
				t.Errorf("wrong password: %d, want 401", s)
			}
			if got := h.storedHash("acme", id); got != c.hash {
				t.Errorf("a wrong password changed the stored hash to %q", got)
			}
			if s := verify(c.pw); s != 204 {
				t.Fatalf("right password: %d, want 204", s)
			}
			upgraded := h.storedHash("acme", id)
			if upgraded == c.hash || !h.app.Hasher.Current(upgraded) || !strings.HasPrefix(upgraded, "$argon2id$v=19$m=1024,t=1,p=1$") {
				t.Fatalf("after the first 204 the stored hash is %q, want argon2id with the current parameters", upgraded)
			}
			if s := verify(c.pw); s != 204 {
				t.Errorf("right password after the upgrade: %d, want 204", s)
			}
			if s := verify(c.pw + "x"); s != 401 {
				t.Errorf("wrong password after the upgrade: %d, want 401", s)
			}
			if got := h.storedHash("acme", id); got != upgraded {
				t.Errorf("a current hash was re-hashed again: %q", got)
			}
		})
	}
	recs, err := h.app.Store.Audit(context.Background(), store.AuditFilter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	rehashes := map[string]bool{}
	for _, r := range recs {
		if r.Action == "password.rehash" {
			rehashes[r.UserID] = true
			if strings.Contains(r.Outcome, "$") {
				t.Errorf("audit outcome %q carries a hash", r.Outcome)
			}
		}
	}
	if n := len(legacyHashes(t)); len(rehashes) != n {
		t.Errorf("password.rehash audited for %d users, want %d", len(rehashes), n)
	}
}

// TestLegacyHashRefused: a malformed or out-of-bounds hash is a 400 that
// names passwordHash and changes nothing, on create and on replace.
func TestLegacyHashRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	const bsalt = "abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui"
	s16, k32 := stdB64([]byte("0123456789abcdef")), stdB64(make([]byte, 32))
	h.putUser(tok, "acme", "keep", map[string]any{"username": "keep", "password": goodPassword})
	for _, c := range []struct{ name, hash string }{
		{"empty", ""},
		{"plaintext", goodPassword},
		{"md5-crypt", "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"},
		{"bcrypt cost 3", "$2b$03$" + bsalt},
		{"bcrypt cost 17", "$2b$17$" + bsalt},
		{"bcrypt truncated", "$2b$10$" + bsalt[:40]},
		{"pbkdf2 iterations 999", "$pbkdf2-sha256$i=999,l=32$" + s16 + "$" + k32},
		{"pbkdf2 iterations 10000001", "$pbkdf2-sha512$i=10000001,l=32$" + s16 + "$" + k32},
		{"pbkdf2 length mismatch", "$pbkdf2-sha256$i=1000,l=16$" + s16 + "$" + k32},
		{"scrypt ln 21", "$scrypt$ln=21,r=8,p=1$" + s16 + "$" + k32},
		{"scrypt r 33", "$scrypt$ln=10,r=33,p=1$" + s16 + "$" + k32},
		{"scrypt p 17", "$scrypt$ln=10,r=8,p=17$" + s16 + "$" + k32},
		{"argon2 m over 1 GiB", "$argon2id$v=19$m=1048577,t=1,p=1$" + s16 + "$" + k32},
		{"argon2 t 11", "$argon2id$v=19$m=1024,t=11,p=1$" + s16 + "$" + k32},
		{"argon2 p 17", "$argon2id$v=19$m=1024,t=1,p=17$" + s16 + "$" + k32},
		{"argon2d", "$argon2d$v=19$m=1024,t=1,p=1$" + s16 + "$" + k32},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, id := range []string{"fresh", "keep"} {
				r := h.do("PUT", P+"/institutions/acme/users/"+id, tok, map[string]any{"username": id, "passwordHash": c.hash})
				if r.Status != 400 || !strings.Contains(string(r.Body), "passwordHash") {
					t.Errorf("PUT %s: %d %s, want 400 naming passwordHash", id, r.Status, r.Body)
				}
				if len(c.hash) > 8 && strings.Contains(string(r.Body), c.hash) {
					t.Errorf("the problem repeats the hash: %s", r.Body)
				}
			}
		})
	}
	var err error
	_ = h.app.Store.View(context.Background(), func(tx store.ReadTx) error {
		_, err = tx.User(context.Background(), "acme", "fresh")
		return nil
	})
	if err == nil {
		t.Error("a refused hash created the user")
	}
	if r := h.do("POST", P+"/institutions/acme/users/keep/password/verify", tok, map[string]string{"password": goodPassword}); r.Status != 204 {
		t.Errorf("a refused hash changed the kept user's password: verify %d", r.Status)
	}
	// password and passwordHash together.
	b, _ := bcrypt.GenerateFromPassword([]byte("x"), 4)
	if r := h.do("PUT", P+"/institutions/acme/users/keep", tok, map[string]any{"username": "keep", "password": goodPassword, "passwordHash": string(b)}); r.Status != 400 {
		t.Errorf("password and passwordHash: %d %s, want 400", r.Status, r.Body)
	}
	// The path next door: another institution's user, with this
	// institution's token, is not written.
	if r := h.do("PUT", P+"/institutions/other/users/x", tok, map[string]any{"username": "x", "passwordHash": string(b)}); r.Status < 400 {
		t.Errorf("PUT into another institution: %d", r.Status)
	}
}

// TestLegacyHashHistoryRehash: a change to the imported password is refused
// as reused, and the matched history entry is upgraded in the same request.
func TestLegacyHashHistoryRehash(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	h.putSettings(tok, map[string]any{"passwordHistory": 3})
	b, err := bcrypt.GenerateFromPassword([]byte(goodPassword), 5)
	if err != nil {
		t.Fatal(err)
	}
	h.putUser(tok, "acme", "u1", map[string]any{"username": "jane.doe", "email": "jane@example.com", "passwordHash": string(b)})
	token := h.resetLink(tok, "acme", "u1")
	r := h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": goodPassword})
	if r.Status != 422 || !strings.Contains(string(r.Body), `"reused"`) {
		t.Fatalf("change to the imported password: %d %s, want 422 reused", r.Status, r.Body)
	}
	upgraded := h.storedHash("acme", "u1")
	if !h.app.Hasher.Current(upgraded) {
		t.Fatalf("after the history match the stored hash is %q, want current argon2id", upgraded)
	}
	if r := h.do("POST", P+"/institutions/acme/users/u1/password/verify", tok, map[string]string{"password": goodPassword}); r.Status != 204 {
		t.Errorf("verify after the history upgrade: %d", r.Status)
	}
	// Still refused as reused: the upgraded entry is in the history.
	r = h.do("POST", P+"/password/change", "", map[string]string{"token": token, "newPassword": goodPassword})
	if r.Status != 422 || !strings.Contains(string(r.Body), `"reused"`) {
		t.Errorf("second change to the same password: %d %s, want 422 reused", r.Status, r.Body)
	}
}

// TestImportLegacyHashes: user import's passwordHash column stores valid
// hashes as given and rejects bad ones with their line, the rest imported.
func TestImportLegacyHashes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	b, err := bcrypt.GenerateFromPassword([]byte(goodPassword), 4)
	if err != nil {
		t.Fatal(err)
	}
	rows := []reset.ImportRow{
		{Line: 2, UserID: "i1", Username: "one", PasswordHash: string(b)},
		{Line: 3, UserID: "i2", Username: "two", PasswordHash: "$2b$17$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui"},
		{Line: 4, UserID: "i3", Username: "three"},
	}
	n, rejected, err := h.app.Reset.ImportUsers(context.Background(), reset.Actor{ClientID: "cli:import"}, "acme", rows, false)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 || len(rejected) != 1 || rejected[0].Line != 3 || !strings.Contains(rejected[0].Reason, "passwordHash: bcrypt: cost 17") {
		t.Fatalf("imported %d, rejected %+v", n, rejected)
	}
	if got := h.storedHash("acme", "i1"); got != string(b) {
		t.Errorf("imported hash stored as %q", got)
	}
	if r := h.do("POST", P+"/institutions/acme/users/i1/password/verify", tok, map[string]string{"password": goodPassword}); r.Status != 204 {
		t.Errorf("verify imported: %d", r.Status)
	}
	if !h.app.Hasher.Current(h.storedHash("acme", "i1")) {
		t.Error("imported hash not upgraded after its first verify")
	}
	if got := h.storedHash("acme", "i3"); got != "" {
		t.Errorf("a row without passwordHash got %q", got)
	}
}

// TestPasswordSchemeMetric: /metrics counts users per hash scheme, and the
// count moves to argon2id as imported users log in.
func TestPasswordSchemeMetric(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	b, err := bcrypt.GenerateFromPassword([]byte(goodPassword), 4)
	if err != nil {
		t.Fatal(err)
	}
	h.putUser(tok, "acme", "b1", map[string]any{"username": "b1", "passwordHash": string(b)})
	h.putUser(tok, "acme", "b2", map[string]any{"username": "b2", "passwordHash": string(b)})
	h.putUser(tok, "acme", "a1", map[string]any{"username": "a1", "password": goodPassword})
	h.putUser(tok, "acme", "n1", map[string]any{"username": "n1"})
	const m = "resetd_users_by_password_scheme"
	body := string(h.do("GET", "/metrics", "", nil).Body)
	for scheme, want := range map[string]float64{"bcrypt": 2, "argon2id": 1, "none": 1, "scrypt": -1} {
		if got := metric(body, m+`{scheme="`+scheme+`"}`); got != want {
			t.Errorf("%s{scheme=%q} = %v, want %v", m, scheme, got, want)
		}
	}
	if r := h.do("POST", P+"/institutions/acme/users/b1/password/verify", tok, map[string]string{"password": goodPassword}); r.Status != 204 {
		t.Fatal(r.Status)
	}
	h.clock.Advance(time.Minute) // past the count's cache
	body = string(h.do("GET", "/metrics", "", nil).Body)
	for scheme, want := range map[string]float64{"bcrypt": 1, "argon2id": 2} {
		if got := metric(body, m+`{scheme="`+scheme+`"}`); got != want {
			t.Errorf("after a login %s{scheme=%q} = %v, want %v", m, scheme, got, want)
		}
	}
}
