package secret

import (
	"encoding/base64"
	"encoding/hex"
	"testing"
)

func TestLengthsAndFreshness(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		make   func() string
		decode func(string) ([]byte, error)
		n      int
	}{
		{"token", func() string { return Token(32) }, base64.RawURLEncoding.DecodeString, 32},
		{"hex", func() string { return Hex(12) }, hex.DecodeString, 12},
		{"bytes", func() string { return string(Bytes(16)) }, func(s string) ([]byte, error) { return []byte(s), nil }, 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := tc.make(), tc.make()
			if a == b {
				t.Fatalf("two calls gave the same value %q", a)
			}
			raw, err := tc.decode(a)
			if err != nil || len(raw) != tc.n {
				t.Fatalf("decoded %d bytes, err %v; want %d", len(raw), err, tc.n)
			}
		})
	}
}
