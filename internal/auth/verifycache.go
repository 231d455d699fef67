package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"sync"

	"github.com/go-jose/go-jose/v4/jwt"
)

// verifiedCap bounds the tokens whose signature check is remembered. A
// client reuses its access token for up to an hour, so a few thousand
// entries cover every client of a busy server; beyond that the oldest
// half is forgotten (and checked again on its next use).
const verifiedCap = 4096

// verified remembers access tokens whose signature and claims parsed, so
// that a client's next request with the same token skips the Ed25519
// verification and the JSON decoding (about a tenth of a send's CPU).
// Only what cannot change for a given token string is kept: the key it
// was signed with and its claims. Everything that can change — the key
// being retired or replaced, the client being revoked, the clock passing
// the token's times — is checked on every use, exactly as for a token
// seen for the first time. Keys are SHA-256 of the token, so the cache
// holds no bearer credential.
type verified struct {
	mu      sync.Mutex
	entries map[[32]byte]verifiedToken
	order   [][32]byte // insertion order, for eviction
}

type verifiedToken struct {
	kid    string
	pub    ed25519.PublicKey
	std    jwt.Claims
	claims Claims
}

func tokenDigest(token string) [32]byte { return sha256.Sum256([]byte(token)) }

func (v *verified) get(d [32]byte) (verifiedToken, bool) {
	v.mu.Lock()
	e, ok := v.entries[d]
	v.mu.Unlock()
	return e, ok
}

func (v *verified) put(d [32]byte, e verifiedToken) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.entries == nil {
		v.entries = make(map[[32]byte]verifiedToken)
	}
	if _, ok := v.entries[d]; ok {
		return
	}
	if len(v.entries) >= verifiedCap {
		// Forget the older half, expired or not: cheap, and bounded.
		half := v.order[:len(v.order)/2]
		for _, k := range half {
			delete(v.entries, k)
		}
		v.order = append(v.order[:0], v.order[len(half):]...)
	}
	v.entries[d] = e
	v.order = append(v.order, d)
}
