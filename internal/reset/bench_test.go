package reset

import (
	"testing"

	"github.com/resetd/resetd/internal/seal"
)

// The per-request secrets of the reset flows: a link token minted and its
// stored hash, and an OTP's keyed hash.

func BenchmarkTokenMint(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_, _ = newToken()
	}
}

func BenchmarkTokenHash(b *testing.B) {
	tok, _ := newToken()
	b.ReportAllocs()
	for b.Loop() {
		_ = hashToken(tok)
	}
}

func BenchmarkOTPMAC(b *testing.B) {
	key, err := seal.New(seal.Generate())
	if err != nil {
		b.Fatal(err)
	}
	s := New(Config{Key: key})
	b.ReportAllocs()
	for b.Loop() {
		_ = s.otpMAC("bench", "u0000001", "123456")
	}
}

func BenchmarkOTPCode(b *testing.B) {
	s := New(Config{})
	b.ReportAllocs()
	for b.Loop() {
		_ = s.otpCode(6)
	}
}
