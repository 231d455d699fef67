package seal

import (
	"bytes"
	"encoding/hex"
	"testing"
)

func TestSealRoundTripAndTamper(t *testing.T) {
	t.Parallel()
	k, err := New(Generate())
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("https://bank.example/reset?token=abc")
	sealed := k.Seal(msg, "delivery")
	if bytes.Contains(sealed, msg) {
		t.Fatal("sealed value contains the plaintext")
	}
	got, err := k.Open(sealed, "delivery")
	if err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := k.Open(sealed, "other"); err == nil {
		t.Fatal("opened under another context")
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := k.Open(sealed, "delivery"); err == nil {
		t.Fatal("opened a tampered value")
	}
	other, _ := New(Generate())
	if _, err := other.Open(k.Seal(msg, "d"), "d"); err == nil {
		t.Fatal("opened under another key")
	}
	if _, err := k.Open([]byte{1, 2}, "d"); err == nil {
		t.Fatal("opened a short value")
	}
}

func TestParseAndMAC(t *testing.T) {
	t.Parallel()
	raw := Generate()
	a, err := Parse(hex.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("too-short"); err == nil {
		t.Fatal("short key accepted")
	}
	b, _ := New(raw)
	if !bytes.Equal(a.MAC("otp", []byte("123456")), b.MAC("otp", []byte("123456"))) {
		t.Fatal("same key, different MAC")
	}
	if bytes.Equal(a.MAC("otp", []byte("123456")), a.MAC("facts", []byte("123456"))) {
		t.Fatal("purposes share a MAC")
	}
}
