package password

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cheapParams keep tests fast; the bounds they exercise do not depend on cost.
var cheapParams = Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// setup returns a Hasher with cheap parameters and room for every parallel
// test, so only the tests that mean to see ErrBusy do.
func setup(t testing.TB) *Hasher {
	t.Helper()
	return NewHasher(cheapParams, 4, time.Minute)
}

func TestHashVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pw, wrong string
	}{
		{"ascii", "correct horse battery staple", "correct horse battery stapl"},
		{"empty", "", " "},
		{"unicode", "pässwörd-日本語-🔑", "passwörd-日本語-🔑"},
		{"case", "Secret", "secret"},
		{"nul byte", "a\x00b", "a"},
		{"long", strings.Repeat("x", 4096), strings.Repeat("x", 4095)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			h := setup(t)
			encoded, err := h.Hash(ctx, tt.pw)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			if ok, err := h.Verify(ctx, encoded, tt.pw); !ok || err != nil {
				t.Errorf("Verify(right password) = %v, %v; want true, nil", ok, err)
			}
			if ok, err := h.Verify(ctx, encoded, tt.wrong); ok || err != nil {
				t.Errorf("Verify(wrong password) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestHashFormat(t *testing.T) {
	t.Parallel()
	h := NewHasher(DefaultParams, 1, 0)
	if got := h.Params(); got != DefaultParams {
		t.Errorf("Params() = %+v, want %+v", got, DefaultParams)
	}
	encoded, err := h.Hash(t.Context(), "pw")
	if err != nil {
		t.Fatal(err)
	}
	// 16-byte salt: 22 base64 characters; 32-byte key: 43.
	re := regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)
	if !re.MatchString(encoded) {
		t.Errorf("Hash = %q, does not match %s", encoded, re)
	}
	p, err := parsePHC(encoded)
	if err != nil {
		t.Fatalf("parsePHC(Hash output): %v", err)
	}
	if p.params != DefaultParams {
		t.Errorf("parsed params = %+v, want %+v", p.params, DefaultParams)
	}
}

func TestHashSalted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := setup(t)
	a, err := h.Hash(ctx, "same password")
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.Hash(ctx, "same password")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of one password are equal: %q", a)
	}
	pa, _ := parsePHC(a)
	pb, _ := parsePHC(b)
	if string(pa.salt) == string(pb.salt) {
		t.Error("two hashes share a salt")
	}
}

// Verify uses the parameters in the string, not the Hasher's: hashes made
// before a cost change, or by another implementation, still verify.
func TestVerifyOtherParams(t *testing.T) {
	t.Parallel()
	verifier := setup(t) // cheapParams
	tests := []struct {
		name    string
		encoded func(t *testing.T) string
		pw      string
	}{
		{
			name: "other Hasher",
			encoded: func(t *testing.T) string {
				other := NewHasher(Params{Memory: 256, Time: 3, Threads: 2, KeyLen: 64, SaltLen: 8}, 1, 0)
				s, err := other.Hash(t.Context(), "pw")
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(s, "$argon2id$v=19$m=256,t=3,p=2$") {
					t.Fatalf("other Hasher produced %q", s)
				}
				return s
			},
			pw: "pw",
		},
		{
			// Made by argon2-cffi (Python, the reference C implementation)
			// with its defaults: checks interoperability of the PHC encoding,
			// not just that this package agrees with itself.
			name: "argon2-cffi m=65536,t=3,p=4",
			encoded: func(*testing.T) string {
				return "$argon2id$v=19$m=65536,t=3,p=4$2m5CBWkA489bnIwyY5iaWQ$w3ujhnFOTF63QwaBVK950q/NxCwyTVQF4LLTeHAEt/Y"
			},
			pw: "TestPass123",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			encoded := tt.encoded(t)
			if ok, err := verifier.Verify(t.Context(), encoded, tt.pw); !ok || err != nil {
				t.Errorf("Verify = %v, %v; want true, nil", ok, err)
			}
			if ok, err := verifier.Verify(t.Context(), encoded, tt.pw+"x"); ok || err != nil {
				t.Errorf("Verify(wrong) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"
	tests := []struct {
		name, phc string
	}{
		{"empty", ""},
		{"dollar only", "$"},
		{"algorithm only", "$argon2id$"},
		{"argon2d", "$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"time 11", "$argon2id$v=19$m=64,t=11,p=1$" + salt + "$" + key},
		{"memory 1 GiB + 1", "$argon2id$v=19$m=1048577,t=1,p=1$" + salt + "$" + key},
		{"no leading dollar", "argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"version 16", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"params reordered", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"params missing", "$argon2id$v=19$m=64,t=1$" + salt + "$" + key},
		{"extra param", "$argon2id$v=19$m=64,t=1,p=1,keyid=x$" + salt + "$" + key},
		{"time zero", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"threads zero", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"threads overflow uint8", "$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key},
		{"memory overflow uint32", "$argon2id$v=19$m=4294967296,t=1,p=1$" + salt + "$" + key},
		{"memory 4 GiB", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
		{"memory below 8p", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key},
		{"negative", "$argon2id$v=19$m=-64,t=1,p=1$" + salt + "$" + key},
		{"plus sign", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key},
		{"empty number", "$argon2id$v=19$m=,t=1,p=1$" + salt + "$" + key},
		{"space", "$argon2id$v=19$m=64, t=1,p=1$" + salt + "$" + key},
		{"salt not base64", "$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key},
		{"salt padded", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"salt too short", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key},
		{"empty salt", "$argon2id$v=19$m=64,t=1,p=1$$" + key},
		{"empty key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$"},
		{"key too short", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$a2V5"},
		{"non-zero trailing bits", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:len(key)-1] + "f"},
		{"url alphabet", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("_", 43)},
		{"line break in key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:20] + "\r\n" + key[20:]},
		{"trailing dollar", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$"},
		{"huge", "$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat("A", 1<<20) + "$" + key},
	}
	h := setup(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ok, err := h.Verify(t.Context(), tt.phc, "pw")
			if err == nil || ok {
				t.Fatalf("Verify = %v, %v; want false and an error", ok, err)
			}
			if !errors.Is(err, ErrInvalidHash) {
				t.Errorf("error %v does not wrap ErrInvalidHash", err)
			}
			if len(tt.phc) > 8 && strings.Contains(err.Error(), tt.phc) {
				t.Errorf("error %q repeats the stored hash", err)
			}
		})
	}

	// The same strings with only the defect removed parse, so each case above
	// fails for its stated reason and not for a typo in salt or key.
	if _, err := parsePHC("$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key); err != nil {
		t.Fatalf("well-formed control: %v", err)
	}
}

func TestNewHasherPanicsOnInvalidParams(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    Params
	}{
		{"zero", Params{}},
		{"no threads", Params{Memory: 64, Time: 1, KeyLen: 32, SaltLen: 16}},
		{"short salt", Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 4}},
		{"too much memory", Params{Memory: maxMemory + 1, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				if recover() == nil {
					t.Error("NewHasher did not panic")
				}
			}()
			NewHasher(tt.p, 1, 0)
		})
	}
}

func TestNewHasherDefaults(t *testing.T) {
	t.Parallel()
	h := NewHasher(cheapParams, 0, 0)
	if cap(h.slots) < 1 || h.maxWait != defaultMaxWait || h.maxWaiters != int64(cap(h.slots))*waitersPerSlot {
		t.Errorf("slots %d, maxWait %v, maxWaiters %d", cap(h.slots), h.maxWait, h.maxWaiters)
	}
}

// holdSlot fills every slot of h, as running computations would, until the
// test ends or the returned release is called.
func holdSlot(t *testing.T, h *Hasher) (release func()) {
	t.Helper()
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}
	released := false
	release = func() {
		if !released {
			released = true
			for range cap(h.slots) {
				<-h.slots
			}
		}
	}
	t.Cleanup(release)
	return release
}

func TestBusyAfterMaxWait(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	h := NewHasher(cheapParams, 1, time.Millisecond)
	encoded, err := h.Hash(ctx, "pw")
	if err != nil {
		t.Fatal(err)
	}

	release := holdSlot(t, h)
	if got := h.InFlight(); got != 1 {
		t.Errorf("InFlight() = %d, want 1", got)
	}
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("Hash with the slot held: err = %v, want ErrBusy", err)
	}
	if ok, err := h.Verify(ctx, encoded, "pw"); ok || !errors.Is(err, ErrBusy) {
		t.Errorf("Verify with the slot held = %v, %v; want false, ErrBusy", ok, err)
	}
	if got := h.Waiting(); got != 0 {
		t.Errorf("Waiting() after timeouts = %d, want 0", got)
	}

	release()
	if ok, err := h.Verify(ctx, encoded, "pw"); !ok || err != nil {
		t.Errorf("Verify after release = %v, %v; want true, nil", ok, err)
	}
	if got := h.InFlight(); got != 0 {
		t.Errorf("InFlight() after release = %d, want 0", got)
	}
}

// TestBusyQueueFull fills the queue with waiters that would wait an hour: the
// next caller must fail at once rather than queue (the test would hang), and
// the waiters must leave on ctx cancellation with ctx.Err().
func TestBusyQueueFull(t *testing.T) {
	t.Parallel()
	h := NewHasher(cheapParams, 1, time.Hour)
	joined := make(chan struct{})
	h.waitHook = func() { joined <- struct{}{} }
	holdSlot(t, h)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const waiters = 1 * waitersPerSlot
	errs := make(chan error, waiters)
	for range waiters {
		go func() {
			_, err := h.Hash(ctx, "pw")
			errs <- err
		}()
	}
	for range waiters {
		<-joined
	}
	if got := h.Waiting(); got != waiters {
		t.Errorf("Waiting() = %d, want %d", got, waiters)
	}

	if _, err := h.Hash(t.Context(), "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("Hash with a full queue: err = %v, want ErrBusy", err)
	}
	encoded := phc{params: cheapParams, salt: make([]byte, 16), key: make([]byte, 32)}.String()
	if ok, err := h.Verify(t.Context(), encoded, "pw"); ok || !errors.Is(err, ErrBusy) {
		t.Errorf("Verify with a full queue = %v, %v; want false, ErrBusy", ok, err)
	}

	cancel()
	for range waiters {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("waiter: err = %v, want context.Canceled", err)
		}
	}
	if got := h.Waiting(); got != 0 {
		t.Errorf("Waiting() after cancel = %d, want 0", got)
	}
}

func TestCanceledContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	h := setup(t)
	// A free slot is not taken for a caller that is gone.
	if _, err := h.Hash(ctx, "pw"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash: err = %v, want context.Canceled", err)
	}
	if h.InFlight() != 0 {
		t.Errorf("InFlight() = %d, want 0", h.InFlight())
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U", "pw")
	f.Add("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U", "")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$$", "x")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$$$", "\xff")
	f.Add("$$$$$", "pw")
	f.Add("$argon2id$v=19$m=10,t=1,p=1$00000000000$00000000000000000000\r000", "0")
	f.Add("", "")
	f.Add("$2b$04$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui", "pw")
	f.Add("$pbkdf2-sha256$i=1000,l=16$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", "pw")
	f.Add("$scrypt$ln=10,r=1,p=1$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", "pw")
	h := setup(f)
	f.Fuzz(func(t *testing.T, encoded, pw string) {
		sp, perr := parseHash(encoded)
		if p, isPHC := sp.(phc); isPHC {
			// Canonical: what parses re-encodes to the same string.
			if got := p.String(); got != encoded {
				t.Fatalf("parse/encode round trip: %q became %q", encoded, got)
			}
		}
		// Parsing accepts costs up to 1 GiB and seconds of CPU; only
		// compute the cheap ones, so the fuzzer keeps its speed.
		switch p := sp.(type) {
		case phc:
			if p.params.Memory > 1024 || p.params.Time > 2 {
				return
			}
		case bcryptHash:
			if string(p.encoded[4:6]) != "04" {
				return
			}
		case pbkdf2Hash:
			if p.iter > 5000 {
				return
			}
		case scryptHash:
			if p.ln > 10 || p.r > 2 || p.p > 2 {
				return
			}
		}
		ok, err := h.Verify(t.Context(), encoded, pw)
		if (err == nil) != (perr == nil) {
			t.Fatalf("Verify error %v, parse error %v", err, perr)
		}
		if ok && err != nil {
			t.Fatalf("Verify = true with error %v", err)
		}
	})
}

func BenchmarkHash(b *testing.B) {
	h := NewHasher(DefaultParams, 1, 0)
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := h.Hash(ctx, "correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	h := NewHasher(DefaultParams, 1, 0)
	ctx := b.Context()
	encoded, err := h.Hash(ctx, "correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := h.Verify(ctx, encoded, "correct horse battery staple"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

func TestMaxMemory(t *testing.T) {
	p := Params{Memory: 8, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}
	if got := NewHasher(p, 3, 0).MaxMemory(); got != 3*8*1024 {
		t.Errorf("MaxMemory = %d, want 3 slots of 8 KiB = %d", got, 3*8*1024)
	}
}
