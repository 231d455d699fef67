package password

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Bounds on parameters. Verify takes its parameters from the stored string,
// so without an upper bound one corrupt or planted row could make a single
// Verify allocate gigabytes (m is a uint32 of KiB) or run for minutes, and the
// concurrency bound would no longer bound memory. The upper bounds leave room
// well above OWASP's and RFC 9106's second recommendation (64 MiB, t=3, p=4);
// the lower bounds are RFC 9106's (salt >= 8 bytes, m >= 8*p KiB) plus a key
// no shorter than 128 bits.
const (
	maxMemory  = 256 * 1024 // KiB, i.e. 256 MiB
	maxTime    = 16
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

// validate reports whether p is within the bounds that argon2 can compute and
// Verify accepts. Its errors carry no prefix: callers add their context.
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

// phc is a parsed argon2id PHC string.
type phc struct {
	params Params
	salt   []byte
	key    []byte
}

// String encodes p as $argon2id$v=19$m=..,t=..,p=..$<salt>$<key>.
func (p phc) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.params.Memory, p.params.Time, p.params.Threads,
		b64.EncodeToString(p.salt), b64.EncodeToString(p.key))
}

// derive computes the argon2id key of pw with p's parameters and salt.
func (p phc) derive(pw string) []byte {
	return argon2.IDKey([]byte(pw), p.salt, p.params.Time, p.params.Memory, p.params.Threads, p.params.KeyLen)
}

// errMalformed is wrapped by every parse error. It stays unexported: to a
// caller a malformed stored hash is just an internal error.
var errMalformed = errors.New("password: malformed phc string")

// parsePHC parses the canonical form String produces and nothing looser:
// argon2id only, version 19 only, parameters in the order m,t,p, decimals
// without sign or leading zeros, unpadded standard base64 with zero trailing
// bits. So parsePHC(s).String() == s for every s it accepts. Errors never
// contain s, which is secret-derived.
func parsePHC(s string) (phc, error) {
	if len(s) > maxPHCLen {
		return phc{}, fmt.Errorf("%w: longer than %d bytes", errMalformed, maxPHCLen)
	}
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" {
		return phc{}, fmt.Errorf("%w: want 5 '$'-separated fields", errMalformed)
	}
	if parts[1] != "argon2id" {
		return phc{}, fmt.Errorf("%w: algorithm is not argon2id", errMalformed)
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return phc{}, fmt.Errorf("%w: version is not %d", errMalformed, argon2.Version)
	}

	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return phc{}, fmt.Errorf("%w: want parameters m,t,p", errMalformed)
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
		return phc{}, fmt.Errorf("%w: salt: %w", errMalformed, err)
	}
	key, err := decodeB64(parts[5])
	if err != nil {
		return phc{}, fmt.Errorf("%w: key: %w", errMalformed, err)
	}

	p := phc{
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
		return phc{}, fmt.Errorf("%w: %w", errMalformed, err)
	}
	return p, nil
}

// parseParam parses "<prefix><decimal>" into an unsigned integer of bits bits.
func parseParam(field, prefix string, bits int) (uint64, error) {
	digits, ok := strings.CutPrefix(field, prefix)
	if !ok {
		return 0, fmt.Errorf("%w: want parameter %q", errMalformed, prefix)
	}
	// strconv.ParseUint would accept leading zeros; the canonical form has
	// none, and checking the digits here keeps the rule in one place.
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, fmt.Errorf("%w: parameter %q is not a canonical decimal", errMalformed, prefix)
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("%w: parameter %q is not a canonical decimal", errMalformed, prefix)
		}
	}
	n, err := strconv.ParseUint(digits, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("%w: parameter %q out of range", errMalformed, prefix)
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
