package password

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"fmt"
	"hash"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/scrypt"
)

// Schemes a stored hash can be in (SPEC §13). New hashes are always
// argon2id; the others are verified so that a bank's existing users keep
// their passwords, and are replaced at their next successful verify.
const (
	SchemeArgon2id     = "argon2id"
	SchemeArgon2i      = "argon2i"
	SchemeBcrypt       = "bcrypt"
	SchemePBKDF2SHA256 = "pbkdf2-sha256"
	SchemePBKDF2SHA512 = "pbkdf2-sha512"
	SchemeScrypt       = "scrypt"
)

// Cost bounds of the legacy schemes (SPEC §13). The upper bounds exist for
// the reason argon2's do: a planted or imported hash must not make every
// later verify of it a denial of service. scrypt's memory (128·r·2^ln
// bytes) is held to argon2's 1 GiB as well, which ln <= 20 and r <= 32
// alone would not do (4 GiB).
const (
	minBcryptCost = 4
	maxBcryptCost = 16
	minPBKDF2Iter = 1_000
	maxPBKDF2Iter = 10_000_000
	minScryptLN   = 10
	maxScryptLN   = 20
	maxScryptR    = 32
	maxScryptP    = 16
	maxScryptMem  = maxMemory * 1024 // bytes

	// Legacy salts are what the old system chose; only their size is
	// bounded (RFC 7914's own scrypt vectors use a 4-byte salt).
	minLegacySalt = 1
	// bcrypt reads at most 72 bytes of a password; the systems that made
	// these hashes ignored the rest, so verification does too.
	bcryptMaxPassword = 72
)

// stored is a parsed hash of any scheme.
type stored interface {
	scheme() string
	// matches runs the scheme's function over pw and compares in
	// constant time.
	matches(pw string) bool
}

// parseHash parses a stored hash of any accepted scheme, checking its form
// and cost bounds before any computation. Errors wrap ErrInvalidHash and
// never contain s.
func parseHash(s string) (stored, error) {
	if len(s) > maxPHCLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidHash, maxPHCLen)
	}
	switch {
	case strings.HasPrefix(s, "$argon2id$"), strings.HasPrefix(s, "$argon2i$"):
		p, err := parsePHC(s)
		if err != nil {
			return nil, err
		}
		return p, nil
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		return parseBcrypt(s)
	case strings.HasPrefix(s, "$pbkdf2-sha256$"), strings.HasPrefix(s, "$pbkdf2-sha512$"):
		return parsePBKDF2(s)
	case strings.HasPrefix(s, "$scrypt$"):
		return parseScrypt(s)
	}
	return nil, fmt.Errorf("%w: not one of argon2id, argon2i, bcrypt ($2a$, $2b$, $2y$), pbkdf2-sha256, pbkdf2-sha512, scrypt", ErrInvalidHash)
}

// CheckHash reports whether s is a hash resetd can verify, within the cost
// bounds (SPEC §13). It computes nothing, so an import can check a million
// rows quickly. The error wraps ErrInvalidHash and says what is wrong
// without repeating s.
func CheckHash(s string) error {
	_, err := parseHash(s)
	return err
}

// Scheme returns the scheme of a valid hash (SchemeArgon2id, SchemeBcrypt…).
func Scheme(s string) (string, error) {
	p, err := parseHash(s)
	if err != nil {
		return "", err
	}
	return p.scheme(), nil
}

// bcryptHash is a modular-crypt bcrypt string, $2b$10$<22 salt><31 hash>.
type bcryptHash struct{ encoded []byte }

const bcryptAlphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func parseBcrypt(s string) (stored, error) {
	if len(s) != 60 || s[6] != '$' {
		return nil, fmt.Errorf("%w: bcrypt: want $2b$CC$ and 53 characters", ErrInvalidHash)
	}
	if s[4] < '0' || s[4] > '9' || s[5] < '0' || s[5] > '9' {
		return nil, fmt.Errorf("%w: bcrypt: cost is not two digits", ErrInvalidHash)
	}
	cost := int(s[4]-'0')*10 + int(s[5]-'0')
	if cost < minBcryptCost || cost > maxBcryptCost {
		return nil, fmt.Errorf("%w: bcrypt: cost %d outside [%d, %d]", ErrInvalidHash, cost, minBcryptCost, maxBcryptCost)
	}
	for i := 7; i < len(s); i++ {
		if strings.IndexByte(bcryptAlphabet, s[i]) < 0 {
			return nil, fmt.Errorf("%w: bcrypt: salt and hash must be bcrypt base64", ErrInvalidHash)
		}
	}
	return bcryptHash{encoded: []byte(s)}, nil
}

func (bcryptHash) scheme() string { return SchemeBcrypt }

func (b bcryptHash) matches(pw string) bool {
	p := []byte(pw)
	if len(p) > bcryptMaxPassword {
		p = p[:bcryptMaxPassword]
	}
	// CompareHashAndPassword compares with subtle.ConstantTimeCompare.
	return bcrypt.CompareHashAndPassword(b.encoded, p) == nil
}

// pbkdf2Hash is $pbkdf2-sha256$i=ITER,l=LEN$SALT$HASH, as Ory Kratos
// writes it: standard base64 without padding.
type pbkdf2Hash struct {
	name string
	h    func() hash.Hash
	iter int
	salt []byte
	key  []byte
}

func parsePBKDF2(s string) (stored, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" {
		return nil, fmt.Errorf("%w: pbkdf2: want $pbkdf2-sha256$i=ITER,l=LEN$SALT$HASH", ErrInvalidHash)
	}
	p := pbkdf2Hash{name: parts[1]}
	switch parts[1] {
	case SchemePBKDF2SHA256:
		p.h = sha256.New
	case SchemePBKDF2SHA512:
		p.h = sha512.New
	}
	fields := strings.Split(parts[2], ",")
	if len(fields) != 2 {
		return nil, fmt.Errorf("%w: pbkdf2: want parameters i,l", ErrInvalidHash)
	}
	iter, err := parseParam(fields[0], "i=", 32)
	if err != nil {
		return nil, err
	}
	if iter < minPBKDF2Iter || iter > maxPBKDF2Iter {
		return nil, fmt.Errorf("%w: pbkdf2: iterations %d outside [%d, %d]", ErrInvalidHash, iter, minPBKDF2Iter, maxPBKDF2Iter)
	}
	l, err := parseParam(fields[1], "l=", 32)
	if err != nil {
		return nil, err
	}
	if p.salt, p.key, err = saltAndKey(parts[3], parts[4]); err != nil {
		return nil, fmt.Errorf("%w: pbkdf2: %w", ErrInvalidHash, err)
	}
	if uint64(len(p.key)) != l {
		return nil, fmt.Errorf("%w: pbkdf2: l=%d but the hash has %d bytes", ErrInvalidHash, l, len(p.key))
	}
	p.iter = int(iter)
	return p, nil
}

func (p pbkdf2Hash) scheme() string { return p.name }

func (p pbkdf2Hash) matches(pw string) bool {
	return subtle.ConstantTimeCompare(pbkdf2.Key([]byte(pw), p.salt, p.iter, len(p.key), p.h), p.key) == 1
}

// scryptHash is $scrypt$ln=LOG2N,r=R,p=P$SALT$HASH (passlib's form):
// standard base64 without padding.
type scryptHash struct {
	ln, r, p  int
	salt, key []byte
}

func parseScrypt(s string) (stored, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 5 || parts[0] != "" {
		return nil, fmt.Errorf("%w: scrypt: want $scrypt$ln=LOG2N,r=R,p=P$SALT$HASH", ErrInvalidHash)
	}
	fields := strings.Split(parts[2], ",")
	if len(fields) != 3 {
		return nil, fmt.Errorf("%w: scrypt: want parameters ln,r,p", ErrInvalidHash)
	}
	ln, err := parseParam(fields[0], "ln=", 8)
	if err != nil {
		return nil, err
	}
	r, err := parseParam(fields[1], "r=", 8)
	if err != nil {
		return nil, err
	}
	p, err := parseParam(fields[2], "p=", 8)
	if err != nil {
		return nil, err
	}
	switch {
	case ln < minScryptLN || ln > maxScryptLN:
		return nil, fmt.Errorf("%w: scrypt: ln %d outside [%d, %d]", ErrInvalidHash, ln, minScryptLN, maxScryptLN)
	case r < 1 || r > maxScryptR:
		return nil, fmt.Errorf("%w: scrypt: r %d outside [1, %d]", ErrInvalidHash, r, maxScryptR)
	case p < 1 || p > maxScryptP:
		return nil, fmt.Errorf("%w: scrypt: p %d outside [1, %d]", ErrInvalidHash, p, maxScryptP)
	case 128*r<<ln > maxScryptMem:
		return nil, fmt.Errorf("%w: scrypt: 128·r·2^ln = %d MiB over %d MiB", ErrInvalidHash, 128*r<<ln>>20, maxScryptMem>>20)
	}
	h := scryptHash{ln: int(ln), r: int(r), p: int(p)}
	if h.salt, h.key, err = saltAndKey(parts[3], parts[4]); err != nil {
		return nil, fmt.Errorf("%w: scrypt: %w", ErrInvalidHash, err)
	}
	return h, nil
}

func (scryptHash) scheme() string { return SchemeScrypt }

func (h scryptHash) matches(pw string) bool {
	key, err := scrypt.Key([]byte(pw), h.salt, 1<<h.ln, h.r, h.p, len(h.key))
	if err != nil { // unreachable within the bounds parseScrypt checks
		return false
	}
	return subtle.ConstantTimeCompare(key, h.key) == 1
}

// saltAndKey decodes a legacy scheme's salt and key and bounds their sizes.
func saltAndKey(salt, key string) ([]byte, []byte, error) {
	s, err := decodeB64(salt)
	if err != nil {
		return nil, nil, fmt.Errorf("salt: %w", err)
	}
	k, err := decodeB64(key)
	if err != nil {
		return nil, nil, fmt.Errorf("hash: %w", err)
	}
	switch {
	case len(s) < minLegacySalt || len(s) > maxSaltLen:
		return nil, nil, fmt.Errorf("salt of %d bytes outside [%d, %d]", len(s), minLegacySalt, maxSaltLen)
	case len(k) < minKeyLen || len(k) > maxKeyLen:
		return nil, nil, fmt.Errorf("hash of %d bytes outside [%d, %d]", len(k), minKeyLen, maxKeyLen)
	}
	return s, k, nil
}
