// Package secret makes the random values resetd hands out or keeps
// (tokens, client secrets, identifiers, key material), all from
// crypto/rand: one place that says where randomness for secrets comes from.
package secret

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
)

// Bytes returns n random bytes.
func Bytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (it crashes the program instead)
	return b
}

// Token returns n random bytes as unpadded base64url: for values a client
// or a browser carries (links, client secrets, cookies).
func Token(n int) string { return base64.RawURLEncoding.EncodeToString(Bytes(n)) }

// Hex returns n random bytes as lowercase hex: for identifiers an
// operator reads (client ids, approval ids).
func Hex(n int) string { return hex.EncodeToString(Bytes(n)) }
