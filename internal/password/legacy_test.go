package password

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/scrypt"
)

func std64(b []byte) string { return base64.RawStdEncoding.EncodeToString(b) }

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyPublishedVectors verifies hashes made by other implementations,
// copied from their test suites or from RFCs: this package must agree with
// the world, not only with itself.
func TestVerifyPublishedVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, encoded, pw, scheme string
	}{
		// phc-winner-argon2 (the reference implementation), src/test.c.
		{"argon2 ref argon2i m=256", "$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8", "password", SchemeArgon2i},
		{"argon2 ref argon2i m=65536", "$argon2i$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$wWKIMhR9lyDFvRz9YTZweHKfbftvj+qf+YFY4NeBbtA", "password", SchemeArgon2i},
		{"argon2 ref argon2i p=2", "$argon2i$v=19$m=256,t=2,p=2$c29tZXNhbHQ$T/XOJ2mh1/TIpJHfCdQan76Q5esCFVoT5MAeIM1Oq2E", "password", SchemeArgon2i},
		{"argon2 ref argon2id m=256", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4", "password", SchemeArgon2id},
		{"argon2 ref argon2id p=2", "$argon2id$v=19$m=256,t=2,p=2$c29tZXNhbHQ$bQk8UB/VmZZF4Oo79iDXuL5/0ttZwg2f/5U52iv1cDc", "password", SchemeArgon2id},
		// ory/x hasherx (what Ory Kratos verifies with), hash_comparator_test.go.
		{"kratos argon2id 16-byte key", "$argon2id$v=19$m=32,t=2,p=4$cm94YnRVOW5jZzFzcVE4bQ$MNzk5BtR2vUhrp6qQEjRNw", "test", SchemeArgon2id},
		{"kratos argon2i", "$argon2i$v=19$m=65536,t=3,p=4$kk51rW/vxIVCYn+EG4kTSg$NyT88uraJ6im6dyha/M5jhXvpqlEdlS/9fEm7ScMb8c", "test", SchemeArgon2i},
		{"kratos bcrypt cost 12", "$2a$12$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6", "test", SchemeBcrypt},
		{"kratos pbkdf2-sha256", "$pbkdf2-sha256$i=100000,l=32$1jP+5Zxpxgtee/iPxGgOz0RfE9/KJuDElP1ley4VxXc$QJxzfvdbHYBpydCbHoFg3GJEqMFULwskiuqiJctoYpI", "test", SchemePBKDF2SHA256},
		{"kratos pbkdf2-sha512", "$pbkdf2-sha512$i=100000,l=32$bdHBpn7OWOivJMVJypy2UqR0UnaD5prQXRZevj/05YU$+wArTfv1a+bNGO1iZrmEdVjhA+lL11wF4/IxpgYfPwc", "test", SchemePBKDF2SHA512},
		// golang.org/x/crypto/bcrypt's own test vector.
		{"x/crypto bcrypt", "$2a$10$XajjQvNhvvRt5GSeFk1xFeyqRrsxkhBkUiQeg0dt.wU1qD4aFDcga", "allmine", SchemeBcrypt},
		// Openwall crypt_blowfish's vectors, the second one past 72 bytes.
		{"crypt_blowfish U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U", SchemeBcrypt},
		{"crypt_blowfish 72 bytes", "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui", "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789chars after 72 are ignored", SchemeBcrypt},
	}
	// RFC 7914 §11 (PBKDF2-HMAC-SHA256) and §12 (scrypt), and the
	// widely published PBKDF2-HMAC-SHA512 vector, in the stored forms.
	rfc := []struct{ name, prefix, salt, keyHex, pw, scheme string }{
		{"RFC 7914 pbkdf2-sha256", "$pbkdf2-sha256$i=80000,l=64$", "NaCl",
			"4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d", "Password", SchemePBKDF2SHA256},
		{"pbkdf2-sha512 c=4096", "$pbkdf2-sha512$i=4096,l=64$", "salt",
			"d197b1b33db0143e018b12f3d1d1479e6cdebdcc97c5c0f87f6902e072f457b5143f30602641b3d55cd335988cb36b84376060ecd532e039b742a239434af2d5", "password", SchemePBKDF2SHA512},
		{"RFC 7914 scrypt N=1024", "$scrypt$ln=10,r=8,p=16$", "NaCl",
			"fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640", "password", SchemeScrypt},
		{"RFC 7914 scrypt N=16384", "$scrypt$ln=14,r=8,p=1$", "SodiumChloride",
			"7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887", "pleaseletmein", SchemeScrypt},
	}
	for _, v := range rfc {
		tests = append(tests, struct{ name, encoded, pw, scheme string }{
			v.name, v.prefix + std64([]byte(v.salt)) + "$" + std64(unhex(t, v.keyHex)), v.pw, v.scheme,
		})
	}
	h := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := CheckHash(tt.encoded); err != nil {
				t.Fatalf("CheckHash: %v", err)
			}
			if got, _ := Scheme(tt.encoded); got != tt.scheme {
				t.Errorf("Scheme = %q, want %q", got, tt.scheme)
			}
			if ok, err := h.Verify(t.Context(), tt.encoded, tt.pw); !ok || err != nil {
				t.Errorf("Verify(right) = %v, %v; want true, nil", ok, err)
			}
			if ok, err := h.Verify(t.Context(), tt.encoded, "!"+tt.pw); ok || err != nil {
				t.Errorf("Verify(wrong) = %v, %v; want false, nil", ok, err)
			}
			if h.Current(tt.encoded) {
				t.Error("Current = true for a hash not made with the Hasher's parameters")
			}
		})
	}
	// bcrypt reads 72 bytes, as the systems that made these hashes did.
	const long = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	if ok, err := h.Verify(t.Context(), "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui", long); !ok || err != nil {
		t.Errorf("Verify(first 72 bytes) = %v, %v; want true, nil", ok, err)
	}
}

// TestVerifyGenerated verifies hashes made in the test by golang.org/x/crypto
// for each scheme at several costs, then upgrades them as the domain does:
// after Hash, the stored string is Current and still verifies.
func TestVerifyGenerated(t *testing.T) {
	t.Parallel()
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		t.Fatal(err)
	}
	const pw = "Tr0ub4dor&3 correct horse"
	type gen struct {
		name string
		make func(t *testing.T) string
	}
	var gens []gen
	for _, cost := range []int{4, 5, 8} {
		for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
			gens = append(gens, gen{fmt.Sprintf("bcrypt %s cost %d", prefix, cost), func(t *testing.T) string {
				b, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
				if err != nil {
					t.Fatal(err)
				}
				return prefix + string(b[4:]) // x/crypto writes $2a$; the three differ only in name for these passwords
			}})
		}
	}
	for _, iter := range []int{1000, 27500} {
		for _, l := range []int{16, 32, 64} {
			gens = append(gens,
				gen{fmt.Sprintf("pbkdf2-sha256 i=%d l=%d", iter, l), func(*testing.T) string {
					return fmt.Sprintf("$pbkdf2-sha256$i=%d,l=%d$%s$%s", iter, l, std64(salt), std64(pbkdf2.Key([]byte(pw), salt, iter, l, sha256.New)))
				}},
				gen{fmt.Sprintf("pbkdf2-sha512 i=%d l=%d", iter, l), func(*testing.T) string {
					return fmt.Sprintf("$pbkdf2-sha512$i=%d,l=%d$%s$%s", iter, l, std64(salt), std64(pbkdf2.Key([]byte(pw), salt, iter, l, sha512.New)))
				}})
		}
	}
	for _, c := range []struct{ ln, r, p int }{{10, 1, 1}, {10, 8, 2}, {14, 8, 1}} {
		gens = append(gens, gen{fmt.Sprintf("scrypt ln=%d r=%d p=%d", c.ln, c.r, c.p), func(t *testing.T) string {
			k, err := scrypt.Key([]byte(pw), salt, 1<<c.ln, c.r, c.p, 32)
			if err != nil {
				t.Fatal(err)
			}
			return fmt.Sprintf("$scrypt$ln=%d,r=%d,p=%d$%s$%s", c.ln, c.r, c.p, std64(salt), std64(k))
		}})
	}
	for _, c := range []struct{ m, t uint32 }{{64, 1}, {1024, 3}} {
		for _, p := range []uint8{1, 2} {
			gens = append(gens,
				gen{fmt.Sprintf("argon2i m=%d t=%d p=%d", c.m, c.t, p), func(*testing.T) string {
					return fmt.Sprintf("$argon2i$v=19$m=%d,t=%d,p=%d$%s$%s", c.m, c.t, p, std64(salt), std64(argon2.Key([]byte(pw), salt, c.t, c.m, p, 32)))
				}},
				gen{fmt.Sprintf("argon2id m=%d t=%d p=%d", c.m, c.t, p), func(*testing.T) string {
					return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", c.m, c.t, p, std64(salt), std64(argon2.IDKey([]byte(pw), salt, c.t, c.m, p, 32)))
				}})
		}
	}
	h := NewHasher(Params{Memory: 128, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16}, 4, time.Minute)
	for _, g := range gens {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			encoded := g.make(t)
			if ok, err := h.Verify(ctx, encoded, pw); !ok || err != nil {
				t.Fatalf("Verify(right) = %v, %v; want true, nil", ok, err)
			}
			if ok, err := h.Verify(ctx, encoded, pw[:len(pw)-1]); ok || err != nil {
				t.Errorf("Verify(wrong) = %v, %v; want false, nil", ok, err)
			}
			if h.Current(encoded) {
				t.Fatal("Current = true for a hash not made with the Hasher's parameters")
			}
			upgraded, err := h.Hash(ctx, pw)
			if err != nil {
				t.Fatal(err)
			}
			if !h.Current(upgraded) || !strings.HasPrefix(upgraded, "$argon2id$v=19$m=128,t=2,p=1$") {
				t.Errorf("upgraded hash %q is not argon2id with the current parameters", upgraded)
			}
			if ok, err := h.Verify(ctx, upgraded, pw); !ok || err != nil {
				t.Errorf("Verify(upgraded) = %v, %v; want true, nil", ok, err)
			}
		})
	}
}

// TestCheckHashRefuses: malformed hashes and costs out of SPEC §13's bounds
// are refused before any computation, with a reason that does not repeat
// the hash.
func TestCheckHashRefuses(t *testing.T) {
	t.Parallel()
	const bsalt = "abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui" // 53 bcrypt characters
	s16, k32 := std64([]byte("0123456789abcdef")), std64(make([]byte, 32))
	tests := []struct{ name, encoded, reason string }{
		{"unknown scheme", "$md5$" + s16 + "$" + k32, "not one of"},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + s16 + "$" + k32, "not one of"},
		{"plaintext", "hunter2hunter2", "not one of"},
		// A real vector (phc-winner-argon2 test.c), but t=16 > 10.
		{"argon2 t=16", "$argon2id$v=19$m=2048,t=16,p=16$c29tZXNhbHQ$FRWpYzcrsos+DHNInvfsl0g8mZBdPqUdarIYh/Pnc1g", "time 16"},
		{"argon2 m > 1 GiB", "$argon2id$v=19$m=1048577,t=1,p=1$" + s16 + "$" + k32, "memory"},
		{"argon2 p=17", "$argon2id$v=19$m=1024,t=1,p=17$" + s16 + "$" + k32, "threads"},
		{"argon2 v=16", "$argon2i$v=16$m=256,t=2,p=1$c29tZXNhbHQ$/U3YPXYsSb3q9XxHvc0MLxur+GP960kN9j7emXX8zwY", "version"},
		{"bcrypt cost 3", "$2b$03$" + bsalt, "cost 3"},
		{"bcrypt cost 17", "$2b$17$" + bsalt, "cost 17"},
		{"bcrypt cost 31", "$2a$31$" + bsalt, "cost 31"},
		{"bcrypt $2x$", "$2x$10$" + bsalt, "not one of"},
		{"bcrypt $2$", "$2$10$" + bsalt, "not one of"},
		{"bcrypt short", "$2b$10$" + bsalt[:52], "53 characters"},
		{"bcrypt long", "$2b$10$" + bsalt + "a", "53 characters"},
		{"bcrypt cost letters", "$2b$1a$" + bsalt, "two digits"},
		{"bcrypt alphabet", "$2b$10$" + strings.Replace(bsalt, "a", "+", 1), "bcrypt base64"},
		{"pbkdf2 i=999", "$pbkdf2-sha256$i=999,l=32$" + s16 + "$" + k32, "iterations 999"},
		{"pbkdf2 i=10000001", "$pbkdf2-sha512$i=10000001,l=32$" + s16 + "$" + k32, "iterations 10000001"},
		{"pbkdf2 l mismatch", "$pbkdf2-sha256$i=1000,l=64$" + s16 + "$" + k32, "l=64"},
		{"pbkdf2 no l", "$pbkdf2-sha256$i=1000$" + s16 + "$" + k32, "i,l"},
		{"pbkdf2 sha1", "$pbkdf2-sha1$i=1000,l=32$" + s16 + "$" + k32, "not one of"},
		{"pbkdf2 passlib form", "$pbkdf2-sha256$29000$" + s16 + "$" + k32, "i,l"},
		{"pbkdf2 padded", "$pbkdf2-sha256$i=1000,l=32$" + s16 + "==$" + k32, "salt"},
		{"pbkdf2 leading zero", "$pbkdf2-sha256$i=01000,l=32$" + s16 + "$" + k32, "canonical"},
		{"pbkdf2 key too short", "$pbkdf2-sha256$i=1000,l=8$" + s16 + "$" + std64(make([]byte, 8)), "hash of 8 bytes"},
		{"pbkdf2 empty salt", "$pbkdf2-sha256$i=1000,l=32$$" + k32, "salt of 0 bytes"},
		{"scrypt ln=9", "$scrypt$ln=9,r=8,p=1$" + s16 + "$" + k32, "ln 9"},
		{"scrypt ln=21", "$scrypt$ln=21,r=1,p=1$" + s16 + "$" + k32, "ln 21"},
		{"scrypt r=0", "$scrypt$ln=14,r=0,p=1$" + s16 + "$" + k32, "r 0"},
		{"scrypt r=33", "$scrypt$ln=10,r=33,p=1$" + s16 + "$" + k32, "r 33"},
		{"scrypt p=17", "$scrypt$ln=14,r=8,p=17$" + s16 + "$" + k32, "p 17"},
		{"scrypt 2 GiB", "$scrypt$ln=20,r=16,p=1$" + s16 + "$" + k32, "2048 MiB"},
		{"scrypt N not log2", "$scrypt$ln=16384,r=8,p=1$" + s16 + "$" + k32, "out of range"},
		{"scrypt missing p", "$scrypt$ln=14,r=8$" + s16 + "$" + k32, "ln,r,p"},
		{"scrypt url base64", "$scrypt$ln=14,r=8,p=1$" + s16 + "$" + strings.Repeat("_", 43), "hash"},
		{"huge", "$2b$10$" + strings.Repeat("a", 1<<16), "longer than"},
	}
	h := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckHash(tt.encoded)
			if !errors.Is(err, ErrInvalidHash) {
				t.Fatalf("CheckHash = %v, want ErrInvalidHash", err)
			}
			if !strings.Contains(err.Error(), tt.reason) {
				t.Errorf("CheckHash = %q, want a reason containing %q", err, tt.reason)
			}
			if strings.Contains(err.Error(), tt.encoded) {
				t.Errorf("error %q repeats the hash", err)
			}
			if ok, err := h.Verify(t.Context(), tt.encoded, "pw"); ok || !errors.Is(err, ErrInvalidHash) {
				t.Errorf("Verify = %v, %v; want false, ErrInvalidHash", ok, err)
			}
		})
	}
	// The bounds themselves are accepted, so each case above fails for its
	// stated reason.
	for _, ok := range []string{
		"$2b$04$" + bsalt, "$2y$16$" + bsalt,
		"$pbkdf2-sha256$i=1000,l=32$" + s16 + "$" + k32, "$pbkdf2-sha512$i=10000000,l=32$" + s16 + "$" + k32,
		"$scrypt$ln=10,r=1,p=1$" + s16 + "$" + k32, "$scrypt$ln=20,r=8,p=16$" + s16 + "$" + k32,
		"$argon2id$v=19$m=1048576,t=10,p=16$" + s16 + "$" + k32,
	} {
		if err := CheckHash(ok); err != nil {
			t.Errorf("CheckHash(%s) = %v, want nil", ok, err)
		}
	}
}

// TestLegacyVerifyTakesASlot: a bcrypt or PBKDF2 verify is bounded like an
// argon2 one, so imported hashes cannot bypass the overload bound.
func TestLegacyVerifyTakesASlot(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := NewHasher(cheapParams, 1, time.Millisecond)
	b, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	salt := []byte("0123456789abcdef")
	for _, encoded := range []string{
		string(b),
		"$pbkdf2-sha256$i=1000,l=32$" + std64(salt) + "$" + std64(pbkdf2.Key([]byte("pw"), salt, 1000, 32, sha256.New)),
	} {
		release := holdSlot(t, h)
		if ok, err := h.Verify(ctx, encoded, "pw"); ok || !errors.Is(err, ErrBusy) {
			t.Errorf("Verify with the slot held = %v, %v; want false, ErrBusy", ok, err)
		}
		release()
		if ok, err := h.Verify(ctx, encoded, "pw"); !ok || err != nil {
			t.Errorf("Verify after release = %v, %v; want true, nil", ok, err)
		}
	}
}

func TestCurrent(t *testing.T) {
	t.Parallel()
	h := setup(t)
	encoded, err := h.Hash(t.Context(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	if !h.Current(encoded) {
		t.Errorf("Current(Hash()) = false")
	}
	for name, p := range map[string]Params{
		"memory":  {Memory: 128, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16},
		"time":    {Memory: 64, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16},
		"threads": {Memory: 64, Time: 1, Threads: 2, KeyLen: 32, SaltLen: 16},
		"key":     {Memory: 64, Time: 1, Threads: 1, KeyLen: 16, SaltLen: 16},
		"salt":    {Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 8},
	} {
		other, err := NewHasher(p, 1, 0).Hash(t.Context(), "pw")
		if err != nil {
			t.Fatal(err)
		}
		if h.Current(other) {
			t.Errorf("Current = true for a hash with other %s", name)
		}
	}
	argon2i := strings.Replace(encoded, "$argon2id$", "$argon2i$", 1)
	if h.Current(argon2i) || h.Current("") || h.Current("$2b$04$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui") {
		t.Error("Current = true for argon2i, empty or bcrypt")
	}
}

func TestParamsValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultParams.Validate(); err != nil {
		t.Fatalf("DefaultParams: %v", err)
	}
	for name, p := range map[string]Params{
		"memory 1 GiB + 1": {Memory: 1<<20 + 1, Time: 2, Threads: 1, KeyLen: 32, SaltLen: 16},
		"time 0":           {Memory: 19456, Time: 0, Threads: 1, KeyLen: 32, SaltLen: 16},
		"time 11":          {Memory: 19456, Time: 11, Threads: 1, KeyLen: 32, SaltLen: 16},
		"threads 0":        {Memory: 19456, Time: 2, Threads: 0, KeyLen: 32, SaltLen: 16},
		"threads 17":       {Memory: 19456, Time: 2, Threads: 17, KeyLen: 32, SaltLen: 16},
		"memory < 8p":      {Memory: 8, Time: 2, Threads: 2, KeyLen: 32, SaltLen: 16},
	} {
		err := p.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "password: argon2 parameters: ") {
			t.Errorf("%s: Validate = %v, want a prefixed error", name, err)
		}
	}
}

// BenchmarkVerifyLegacy is the cost of a first login per imported scheme,
// at the defaults of the systems such hashes come from (the rehash after it
// costs one BenchmarkHash more):
//
//	go test -run '^$' -bench VerifyLegacy ./internal/password
func BenchmarkVerifyLegacy(b *testing.B) {
	const pw = "correct horse battery staple"
	salt := []byte("0123456789abcdef")
	bc, err := bcrypt.GenerateFromPassword([]byte(pw), 10)
	if err != nil {
		b.Fatal(err)
	}
	sc, err := scrypt.Key([]byte(pw), salt, 1<<15, 8, 1, 32)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, encoded string }{
		{"bcrypt cost 10", string(bc)},
		{"pbkdf2-sha256 i=27500 (Keycloak <24)", fmt.Sprintf("$pbkdf2-sha256$i=27500,l=64$%s$%s", std64(salt), std64(pbkdf2.Key([]byte(pw), salt, 27500, 64, sha256.New)))},
		{"pbkdf2-sha512 i=210000 (Keycloak 24+)", fmt.Sprintf("$pbkdf2-sha512$i=210000,l=64$%s$%s", std64(salt), std64(pbkdf2.Key([]byte(pw), salt, 210000, 64, sha512.New)))},
		{"scrypt ln=15 r=8 p=1", fmt.Sprintf("$scrypt$ln=15,r=8,p=1$%s$%s", std64(salt), std64(sc))},
		{"argon2id m=65536 t=3 p=4 (Kratos)", fmt.Sprintf("$argon2id$v=19$m=65536,t=3,p=4$%s$%s", std64(salt), std64(argon2.IDKey([]byte(pw), salt, 3, 65536, 4, 32)))},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := NewHasher(DefaultParams, 1, 0)
			for b.Loop() {
				if ok, err := h.Verify(b.Context(), c.encoded, pw); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}
