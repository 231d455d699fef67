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

// A keyring NEW,OLD opens and verifies what OLD made, makes everything new
// under NEW, and tells which key made a value; a ring without OLD opens
// nothing of OLD's.
func TestKeyring(t *testing.T) {
	t.Parallel()
	oldRaw, newRaw := Generate(), Generate()
	old, _ := New(oldRaw)
	ring, err := NewRing(newRaw, oldRaw)
	if err != nil {
		t.Fatal(err)
	}
	onlyNew, _ := New(newRaw)
	sealed := old.Seal([]byte("queued message"), "d")
	if got, err := ring.Open(sealed, "d"); err != nil || string(got) != "queued message" {
		t.Fatalf("ring opens OLD's value: %q %v", got, err)
	}
	if _, err := onlyNew.Open(sealed, "d"); err == nil {
		t.Fatal("NEW alone opened OLD's value")
	}
	if ring.SealedBy(sealed) != ring.IDs()[1] || ring.Current(sealed) || !ring.Current(ring.Seal([]byte("x"), "d")) {
		t.Fatal("SealedBy/Current do not tell OLD's values from NEW's")
	}
	mac := old.TaggedMAC("otp", []byte("123456"))
	if ok, current := ring.VerifyMAC("otp", []byte("123456"), mac); !ok || current {
		t.Fatalf("OLD's MAC under the ring: ok=%v current=%v, want true false", ok, current)
	}
	if ok, current := ring.VerifyMAC("otp", []byte("123456"), ring.TaggedMAC("otp", []byte("123456"))); !ok || !current {
		t.Fatal("NEW's MAC does not verify as current")
	}
	if ok, _ := ring.VerifyMAC("otp", []byte("654321"), mac); ok {
		t.Fatal("a wrong code verified")
	}
	if ok, _ := onlyNew.VerifyMAC("otp", []byte("123456"), mac); ok {
		t.Fatal("NEW alone verified OLD's MAC")
	}
	// Values from before key ids (untagged) still open and verify.
	legacy := old.ring[0].mac("otp", []byte("123456"))
	if ok, current := ring.VerifyMAC("otp", []byte("123456"), legacy); !ok || current {
		t.Fatal("an untagged MAC of OLD does not verify under the ring")
	}
	n := old.ring[0].aead.NonceSize()
	nonce := make([]byte, n)
	untagged := old.ring[0].aead.Seal(nonce, nonce, []byte("v"), []byte("d"))
	if got, err := ring.Open(untagged, "d"); err != nil || string(got) != "v" {
		t.Fatalf("an untagged sealed value of OLD: %q %v", got, err)
	}
	if !ring.Knows(old.Checks()[0]) || onlyNew.Knows(old.Checks()[0]) {
		t.Fatal("check values")
	}
	if _, err := NewRing(newRaw, newRaw); err == nil {
		t.Fatal("the same key twice in a ring accepted")
	}
	if _, err := Parse(hex.EncodeToString(newRaw) + "," + hex.EncodeToString(oldRaw)); err != nil {
		t.Fatalf("a comma-separated ring: %v", err)
	}
	if _, err := Parse(hex.EncodeToString(newRaw) + ",short"); err == nil {
		t.Fatal("a bad key in the ring accepted")
	}
}
