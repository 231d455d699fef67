// Package seal owns the server's secret key and everything derived from
// it: sealing (AES-256-GCM) of what must be stored but not in clear (queued
// messages that carry a link, signing keys), and keyed hashes (HMAC-SHA256)
// of short secrets such as OTPs, which a plain hash would not protect.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/resetd/resetd/internal/secret"
)

// KeySize is the secret key's length in bytes.
const KeySize = 32

// ErrOpen means a sealed value was tampered with or sealed under another key.
var ErrOpen = errors.New("seal: cannot open: wrong key or tampered data")

// Key is the server's secret key with its derived subkeys.
type Key struct {
	aead cipher.AEAD
	root [KeySize]byte
}

// New builds a Key from raw key material (exactly KeySize bytes).
func New(raw []byte) (*Key, error) {
	if len(raw) != KeySize {
		return nil, fmt.Errorf("seal: key must be %d bytes, got %d", KeySize, len(raw))
	}
	k := &Key{}
	copy(k.root[:], raw)
	block, err := aes.NewCipher(k.derive("seal/aes-256-gcm/v1"))
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	k.aead, err = cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return k, nil
}

// Parse reads a key given as 64 hex characters or as base64 (std or URL,
// padded or not) of 32 bytes, the forms RESETD_SECRET_KEY accepts.
func Parse(s string) (*Key, error) {
	if b, err := hex.DecodeString(s); err == nil && len(b) == KeySize {
		return New(b)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == KeySize {
			return New(b)
		}
	}
	return nil, errors.New("seal: secret key must be 32 bytes as 64 hex characters or base64")
}

// Generate returns fresh random key material.
func Generate() []byte { return secret.Bytes(KeySize) }

func (k *Key) derive(label string) []byte {
	m := hmac.New(sha256.New, k.root[:])
	m.Write([]byte(label))
	return m.Sum(nil)
}

// Seal encrypts and authenticates plaintext; ad binds it to a context
// (e.g. "delivery") so a sealed value cannot be replayed elsewhere.
func (k *Key) Seal(plaintext []byte, ad string) []byte {
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	_, _ = rand.Read(nonce) // in place: the nonce heads the sealed value's one allocation
	return k.aead.Seal(nonce, nonce, plaintext, []byte(ad))
}

// Open reverses Seal.
func (k *Key) Open(sealed []byte, ad string) ([]byte, error) {
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

// MAC returns HMAC-SHA256 of data under a subkey for purpose, so MACs
// made for one purpose never match another's.
func (k *Key) MAC(purpose string, data []byte) []byte {
	m := hmac.New(sha256.New, k.derive("mac/"+purpose))
	m.Write(data)
	return m.Sum(nil)
}
