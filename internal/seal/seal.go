// Package seal owns the server's secret keys and everything derived from
// them: sealing (AES-256-GCM) of what must be stored but not in clear
// (queued messages that carry a link, signing keys, webhook secrets), and
// keyed hashes (HMAC-SHA256) of short secrets such as OTPs, which a plain
// hash would not protect.
//
// A Key is a keyring (SPEC §9): the first key seals and keys everything
// new; every key of the ring still opens and verifies what it made, so an
// operator rotates RESETD_SECRET_KEY as NEW,OLD without losing anything.
// Sealed values and tagged MACs start with the 4-byte id of the key that
// made them, so `resetd keys status` can count what still depends on a key.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/resetd/resetd/internal/secret"
)

// KeySize is the secret key's length in bytes.
const KeySize = 32

// idSize is the length of the key id that heads sealed values and tagged MACs.
const idSize = 4

// MACSize is the length of an untagged MAC; a tagged one is idSize longer.
const MACSize = sha256.Size

// ErrOpen means a sealed value was tampered with or sealed under a key
// that is not in the ring.
var ErrOpen = errors.New("seal: cannot open: wrong key or tampered data")

// one is a single secret key with its derived subkeys.
type one struct {
	aead  cipher.AEAD
	root  [KeySize]byte
	id    [idSize]byte
	check []byte
}

// Key is the keyring; Keys()[0] is current.
type Key struct {
	ring []*one
}

func newOne(raw []byte) (*one, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("seal: key must be %d bytes, got %d", KeySize, len(raw))
	}
	k := &one{}
	copy(k.root[:], raw)
	block, err := aes.NewCipher(k.derive("seal/aes-256-gcm/v1"))
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	copy(k.id[:], k.derive("key-id/v1"))
	k.check = k.derive("check/v1")
	return k, nil
}

// New builds a one-key ring from raw key material (exactly KeySize bytes).
func New(raw []byte) (*Key, error) { return NewRing(raw) }

// NewRing builds a ring from raw keys, current first. The same key twice
// is refused: it would hide a copy-paste mistake in a rotation.
func NewRing(raws ...[]byte) (*Key, error) {
	if len(raws) == 0 {
		return nil, errors.New("seal: no key")
	}
	r := &Key{}
	for _, raw := range raws {
		k, err := newOne(raw)
		if err != nil {
			return nil, err
		}
		for _, o := range r.ring {
			if o.id == k.id {
				return nil, errors.New("seal: the same key is twice in the keyring")
			}
		}
		r.ring = append(r.ring, k)
	}
	return r, nil
}

// Parse reads RESETD_SECRET_KEY: one key, or a comma-separated keyring
// (current first), each 32 bytes as 64 hex characters or as base64 (std
// or URL, padded or not).
func Parse(s string) (*Key, error) {
	var raws [][]byte
	for i, part := range strings.Split(s, ",") {
		b, err := parseOne(strings.TrimSpace(part))
		if err != nil {
			if strings.Contains(s, ",") {
				return nil, fmt.Errorf("seal: key %d of the keyring: %w", i+1, err)
			}
			return nil, err
		}
		raws = append(raws, b)
	}
	return NewRing(raws...)
}

func parseOne(s string) ([]byte, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return b, nil
		}
	}
	return nil, errors.New("secret key must be 32 bytes as 64 hex characters or base64")
}

// Generate returns fresh random key material.
func Generate() []byte { return secret.Bytes(KeySize) }

func (k *one) derive(label string) []byte {
	m := hmac.New(sha256.New, k.root[:])
	m.Write([]byte(label))
	return m.Sum(nil)
}

func (k *one) mac(purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, k.derive("mac/"+purpose))
	m.Write(data)
	return m.Sum(nil)
}

// ID is a key's short public id: 8 hex characters derived from the key
// (one-way), shown by `resetd keys status`.
type ID string

// IDs lists the ring's key ids, current first.
func (r *Key) IDs() []ID {
	out := make([]ID, len(r.ring))
	for i, k := range r.ring {
		out[i] = ID(hex.EncodeToString(k.id[:]))
	}
	return out
}

// Checks returns each key's check value (a one-way derivation the
// database records to recognise a key it has seen), current first.
func (r *Key) Checks() [][]byte {
	out := make([][]byte, len(r.ring))
	for i, k := range r.ring {
		out[i] = bytes.Clone(k.check)
	}
	return out
}

// Knows reports whether check is the check value of a key of the ring.
func (r *Key) Knows(check []byte) bool {
	for _, k := range r.ring {
		if hmac.Equal(k.check, check) {
			return true
		}
	}
	return false
}

// Seal encrypts and authenticates plaintext under the current key; ad
// binds it to a context (e.g. "delivery") so a sealed value cannot be
// replayed elsewhere. The value starts with the current key's id.
func (r *Key) Seal(plaintext []byte, ad string) []byte {
	k := r.ring[0]
	n := k.aead.NonceSize()
	out := make([]byte, idSize+n, idSize+n+len(plaintext)+k.aead.Overhead())
	copy(out, k.id[:])
	_, _ = rand.Read(out[idSize:])
	return k.aead.Seal(out, out[idSize:], plaintext, []byte(ad))
}

// Open reverses Seal under whichever key of the ring made the value.
// Values sealed before key ids existed (no id prefix) are tried under
// every key.
func (r *Key) Open(sealed []byte, ad string) ([]byte, error) {
	if k := r.tagged(sealed); k != nil {
		if out, err := k.open(sealed[idSize:], ad); err == nil {
			return out, nil
		}
	}
	for _, k := range r.ring {
		if out, err := k.open(sealed, ad); err == nil {
			return out, nil
		}
	}
	return nil, ErrOpen
}

// SealedBy returns the id of the ring key that made a sealed value or a
// tagged MAC, or "" when it carries no id of the ring.
func (r *Key) SealedBy(v []byte) ID {
	if k := r.tagged(v); k != nil {
		return ID(hex.EncodeToString(k.id[:]))
	}
	return ""
}

// TagOf returns the key id a sealed value or tagged MAC carries, whether
// or not that key is in the ring ("" when v is too short to carry one).
func TagOf(v []byte) ID {
	if len(v) < idSize {
		return ""
	}
	return ID(hex.EncodeToString(v[:idSize]))
}

// Current reports whether v was made by the current key.
func (r *Key) Current(v []byte) bool {
	return len(v) >= idSize && bytes.Equal(v[:idSize], r.ring[0].id[:])
}

func (r *Key) tagged(v []byte) *one {
	if len(v) < idSize {
		return nil
	}
	for _, k := range r.ring {
		if bytes.Equal(v[:idSize], k.id[:]) {
			return k
		}
	}
	return nil
}

func (k *one) open(sealed []byte, ad string) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < n+k.aead.Overhead() {
		return nil, ErrOpen
	}
	out, err := k.aead.Open(nil, sealed[:n], sealed[n:], []byte(ad))
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// MAC returns HMAC-SHA256 of data under the current key's subkey for
// purpose, so MACs made for one purpose never match another's. It is for
// values that live no longer than a request or a browser session (CSRF);
// what is stored uses TaggedMAC.
func (r *Key) MAC(purpose string, data []byte) []byte {
	return r.ring[0].mac(purpose, data)
}

// MACs returns data's MAC under every key of the ring, current first: a
// value a client got before a rotation (a contact-method id) still
// matches one of them.
func (r *Key) MACs(purpose string, data []byte) [][]byte {
	out := make([][]byte, len(r.ring))
	for i, k := range r.ring {
		out[i] = k.mac(purpose, data)
	}
	return out
}

// TaggedMAC is MAC under the current key, headed by its key id: what a
// stored keyed hash (OTP, fact) is.
func (r *Key) TaggedMAC(purpose string, data []byte) []byte {
	k := r.ring[0]
	return append(bytes.Clone(k.id[:]), k.mac(purpose, data)...)
}

// VerifyMAC reports whether stored (a TaggedMAC, or an untagged MAC made
// before key ids existed) is data's MAC under a key of the ring, and
// whether that key is the current one (if not, the caller should store
// TaggedMAC anew: the record is re-keyed). Every key is computed, so the
// time taken does not tell which matched.
func (r *Key) VerifyMAC(purpose string, data, stored []byte) (ok, current bool) {
	var want []byte
	var k *one
	switch len(stored) {
	case idSize + MACSize:
		k, want = r.tagged(stored), stored[idSize:]
	case MACSize:
		want = stored
	}
	for i, o := range r.ring {
		got := o.mac(purpose, data)
		if want != nil && (k == nil || k == o) && hmac.Equal(got, want) && !ok {
			ok, current = true, i == 0 && k != nil
		}
	}
	return ok, current
}
