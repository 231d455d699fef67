package password

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Bounds on parameters. Verify takes its parameters from the stored string,
// so without an upper bound one corrupt, planted or imported row could make a
// single Verify allocate gigabytes (m is a uint32 of KiB) or run for minutes,
// and the concurrency bound would no longer bound memory. The upper bounds
// are SPEC §13's (m <= 1 GiB, t <= 10, p <= 16), well above OWASP's and RFC
// 9106's second recommendation (64 MiB, t=3, p=4), so a bank's existing
// hashes import; the lower bounds are RFC 9106's (salt >= 8 bytes, m >= 8*p
// KiB) plus a key no shorter than 128 bits. The same bounds apply to the
// parameters new hashes are made with (--argon2-*).
const (
	maxMemory  = 1024 * 1024 // KiB, i.e. 1 GiB
	maxTime    = 10
	maxThreads = 16
	minKeyLen  = 16
	maxKeyLen  = 128
	minSaltLen = 8
	maxSaltLen = 128

	// maxPHCLen is longer than any string within the bounds above, and
	// stops a huge input before it is split or base64-decoded.
	maxPHCLen = 512
)

var b64 = base64.RawStdEncoding.Strict()

// Validate reports whether p is within the bounds that argon2 can compute and
// Verify accepts, so that a configuration error is found at start-up.
func (p Params) Validate() error {
	if err := p.validate(); err != nil {
		return fmt.Errorf("password: argon2 parameters: %w", err)
	}
	return nil
}

// validate is Validate without a prefix: callers add their context.
func (p Params) validate() error {
	switch {
	case p.Time < 1 || p.Time > maxTime:
		return fmt.Errorf("time %d outside [1, %d]", p.Time, maxTime)
	case p.Threads < 1 || p.Threads > maxThreads:
		return fmt.Errorf("threads %d outside [1, %d]", p.Threads, maxThreads)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory:
		return fmt.Errorf("memory %d KiB outside [8*threads, %d]", p.Memory, maxMemory)
	case p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen:
		return fmt.Errorf("key length %d outside [%d, %d]", p.KeyLen, minKeyLen, maxKeyLen)
	case p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen:
		return fmt.Errorf("salt length %d outside [%d, %d]", p.SaltLen, minSaltLen, maxSaltLen)
	}
	return nil
}

// phc is a parsed argon2id or argon2i PHC string.
type phc struct {
	variant string // SchemeArgon2id or SchemeArgon2i; "" means argon2id
	params  Params
	salt    []byte
	key     []byte
}

func (p phc) scheme() string {
	if p.variant == "" {
		return SchemeArgon2id
	}
	return p.variant
}

// String encodes p as $argon2id$v=19$m=..,t=..,p=..$<salt>$<key>.
func (p phc) String() string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s",
		p.scheme(), argon2.Version, p.params.Memory, p.params.Time, p.params.Threads,
		b64.EncodeToString(p.salt), b64.EncodeToString(p.key))
}

// derive computes the argon2 key of pw with p's variant, parameters and salt.
func (p phc) derive(pw string) []byte {
	if p.scheme() == SchemeArgon2i {
		return argon2.Key([]byte(pw), p.salt, p.params.Time, p.params.Memory, p.params.Threads, p.params.KeyLen)
	}
	return argon2.IDKey([]byte(pw), p.salt, p.params.Time, p.params.Memory, p.params.Threads, p.params.KeyLen)
}

func (p phc) matches(pw string) bool {
	return subtle.ConstantTimeCompare(p.derive(pw), p.key) == 1
}

// ErrInvalidHash is wrapped by every parse error: a hash of a scheme resetd
// does not verify, a malformed one, or one whose cost is out of bounds. An
// administrator's import gets it as a 400 with the detail; a stored hash
// that fails to parse is an internal error.
var ErrInvalidHash = errors.New("password: invalid hash")

// parsePHC parses the canonical form String produces and nothing looser:
// argon2id or argon2i, version 19 only, parameters in the order m,t,p,
// decimals without sign or leading zeros, unpadded standard base64 with zero
// trailing bits. So parsePHC(s).String() == s for every s it accepts. Errors
// never contain s, which is secret-derived.
func parsePHC(s string) (phc, error) {
	if len(s) > maxPHCLen {
		return phc{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidHash, maxPHCLen)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return phc{}, fmt.Errorf("%w: want 5 '$'-separated fields", ErrInvalidHash)
	}
	var variant string
	switch parts[1] {
	case SchemeArgon2id:
	case SchemeArgon2i:
		variant = SchemeArgon2i
	default:
		return phc{}, fmt.Errorf("%w: algorithm is not argon2id or argon2i", ErrInvalidHash)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, fmt.Errorf("%w: version is not %d", ErrInvalidHash, argon2.Version)
	}

	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return phc{}, fmt.Errorf("%w: want parameters m,t,p", ErrInvalidHash)
	}
	m, err := parseParam(fields[0], "m=", 32)
	if err != nil {
		return phc{}, err
	}
	t, err := parseParam(fields[1], "t=", 32)
	if err != nil {
		return phc{}, err
	}
	threads, err := parseParam(fields[2], "p=", 8)
	if err != nil {
		return phc{}, err
	}

	salt, err := decodeB64(parts[4])
	if err != nil {
		return phc{}, fmt.Errorf("%w: salt: %w", ErrInvalidHash, err)
	}
	key, err := decodeB64(parts[5])
	if err != nil {
		return phc{}, fmt.Errorf("%w: key: %w", ErrInvalidHash, err)
	}

	p := phc{
		variant: variant,
		params: Params{
			Memory:  uint32(m),
			Time:    uint32(t),
			Threads: uint8(threads),
			KeyLen:  uint32(len(key)),
			SaltLen: uint32(len(salt)),
		},
		salt: salt,
		key:  key,
	}
	if err := p.params.validate(); err != nil {
		return phc{}, fmt.Errorf("%w: %w", ErrInvalidHash, err)
	}
	return p, nil
}

// parseParam parses "<prefix><decimal>" into an unsigned integer of bits bits.
func parseParam(field, prefix string, bits int) (uint64, error) {
	digits, ok := strings.CutPrefix(field, prefix)
	if !ok {
		return 0, fmt.Errorf("%w: want parameter %q", ErrInvalidHash, prefix)
	}
	// strconv.ParseUint would accept leading zeros; the canonical form has
	// none, and checking the digits here keeps the rule in one place.
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, fmt.Errorf("%w: parameter %q is not a canonical decimal", ErrInvalidHash, prefix)
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("%w: parameter %q is not a canonical decimal", ErrInvalidHash, prefix)
		}
	}
	n, err := strconv.ParseUint(digits, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: parameter %q out of range", ErrInvalidHash, prefix)
	}
	return n, nil
}

// decodeB64 decodes unpadded standard base64 with zero trailing bits, and
// refuses the '\r' and '\n' that encoding/base64 silently skips even in
// strict mode (found by FuzzVerify).
func decodeB64(s string) ([]byte, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("line break in base64")
	}
	return b64.DecodeString(s)
}
