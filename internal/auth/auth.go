// Package auth owns OAuth2 client credentials: clients and their secret
// hashes, the signing keys, issuing access tokens (signed JWTs) and
// verifying them without a database read, and the scope vocabulary.
package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// Scopes, exactly as clients spell them.
const (
	ScopeResetWrite    = "https://jackhenry.com/password-reset/password-reset.write"
	ScopeSettingsRead  = "https://jackhenry.com/institutions/settings.read"
	ScopeSettingsWrite = "https://jackhenry.com/institutions/settings.write"
	ScopeUsersRead     = "institution-users:read"
	ScopeUsersWrite    = "institution-users:write"
	ScopeUsersManage   = "institution-users:manage"
	ScopeVerify        = "passwords:verify"
	ScopeApprove       = "password-reset.approve"
)

// AllScopes lists every scope resetd knows.
var AllScopes = []string{ScopeResetWrite, ScopeSettingsRead, ScopeSettingsWrite, ScopeUsersRead, ScopeUsersWrite, ScopeUsersManage, ScopeVerify, ScopeApprove}

// AllInstitutions is the institution binding of a client that may act on every institution.
const AllInstitutions = "*"

// Errors.
var (
	ErrInvalidClient = errors.New("auth: invalid client")
	ErrInvalidScope  = errors.New("auth: invalid scope")
	ErrInvalidToken  = errors.New("auth: invalid token")
	ErrThrottled     = errors.New("auth: too many failed attempts")
)

// TokenTTL is the lifetime of an access token; Verify refuses a token
// whose exp − iat is longer, by more than lifetimeLeeway (SPEC §9).
const TokenTTL = time.Hour

const (
	lifetimeLeeway = time.Minute
	clockLeeway    = 30 * time.Second
)

// Failed client authentications allowed per (client id, source IP) in
// failWindow: a client id is not a secret, so a count per id alone would
// let anyone lock a client out from afar (SPEC §9).
const (
	maxFailures = 10
	failWindow  = 15 * time.Minute
)

// failKey is the one rate-limit key of wrong client secrets.
func failKey(clientID, ip string) string { return "authfail:" + clientID + "|" + ip }

// Claims is what a verified access token says.
type Claims struct {
	ClientID      string
	InstitutionID string
	Scopes        []string
	Expiry        time.Time
	// X5T is the SHA-256 thumbprint of the client certificate the token
	// is bound to (cnf.x5t#S256, RFC 8705); "" when not bound.
	X5T string
	// JKT is the thumbprint of the DPoP key the token is bound to
	// (cnf.jkt, RFC 9449); "" when not bound.
	JKT string
}

// clone copies c so that a caller changing its Scopes changes no other copy.
func (c Claims) clone() Claims {
	c.Scopes = append([]string(nil), c.Scopes...)
	return c
}

// Has reports whether the token carries scope.
func (c Claims) Has(scope string) bool { return slices.Contains(c.Scopes, scope) }

// Allows reports whether the token may act on institution id.
func (c Claims) Allows(institutionID string) bool {
	return c.InstitutionID == AllInstitutions || c.InstitutionID == institutionID
}

type customClaims struct {
	Scope       string   `json:"scope"`
	Institution string   `json:"inst"`
	Cnf         *Binding `json:"cnf,omitempty"`
	// ClientID is RFC 9068's client_id, the same as sub here.
	ClientID string `json:"client_id,omitempty"`
}

type verifyKey struct {
	pub     ed25519.PublicKey
	retired time.Time
}

// tokenType is the JWT typ header of access tokens (RFC 9068).
const tokenType = "at+jwt"

// Store is what auth needs of the store: its clients and signing keys, and
// transactions for the failure counter. store.Store satisfies it.
type Store interface {
	View(ctx context.Context, fn func(store.ReadTx) error) error
	Update(ctx context.Context, fn func(store.Tx) error) error
	Client(ctx context.Context, id string) (store.Client, error)
	InsertClient(ctx context.Context, c store.Client) error
	SigningKeys(ctx context.Context) ([]store.SigningKey, error)
	InsertSigningKey(ctx context.Context, k store.SigningKey) error
	UseOnce(ctx context.Context, key string, expires, now time.Time) error
	store.ClientAdmin
	UpdateSigningKey(ctx context.Context, k store.SigningKey) error
}

// Service issues and verifies tokens.
type Service struct {
	store    Store
	key      *seal.Key
	issuer   string
	audience string
	now      func() time.Time

	mu      sync.RWMutex
	signer  jose.Signer
	signKID string
	verify  map[string]verifyKey
	// revoked are the disabled and deleted clients, whose tokens are refused.
	revoked map[string]bool
	// lastReload is when the snapshot above was read (see refreshEvery).
	lastReload time.Time
	// refreshing lets one request reread the snapshot while others use
	// the one they have.
	refreshing sync.Mutex
	// verified remembers tokens whose signature was checked.
	verified verified
}

// New loads the signing keys and the revoked clients. It creates no
// signing key: only `serve` (EnsureSigningKey) and `keys rotate` do.
func New(ctx context.Context, st Store, key *seal.Key, issuer string, now func() time.Time) (*Service, error) {
	s := &Service{store: st, key: key, issuer: issuer, audience: issuer + "/a/password-reset", now: now}
	if err := s.reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// EnsureSigningKey makes the first signing key if there is none this
// replica can sign with (a server's first start).
func (s *Service) EnsureSigningKey(ctx context.Context) error {
	s.mu.RLock()
	ok := s.signer != nil
	s.mu.RUnlock()
	if ok {
		return nil
	}
	return s.Rotate(ctx)
}

// Issuer is the iss claim and the base of the server metadata.
func (s *Service) Issuer() string { return s.issuer }

// Rotate makes a new signing key; older keys keep verifying until the
// tokens they signed have expired.
func (s *Service) Rotate(ctx context.Context) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("auth: generate key: %w", err)
	}
	kid := secret.Hex(8)
	k := store.SigningKey{ID: kid, Alg: string(jose.EdDSA), Private: s.key.Seal(priv.Seed(), "signing-key:"+kid), Public: pub, CreatedAt: s.now()}
	if err := s.store.InsertSigningKey(ctx, k); err != nil {
		return err
	}
	return s.reload(ctx)
}

func (s *Service) reload(ctx context.Context) error {
	keys, err := s.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	ids, err := s.store.RevokedClients(ctx)
	if err != nil {
		return err
	}
	revoked := make(map[string]bool, len(ids))
	for _, id := range ids {
		revoked[id] = true
	}
	verify := map[string]verifyKey{}
	var signer jose.Signer
	var signKID string
	for _, k := range keys { // newest first
		if k.Alg != string(jose.EdDSA) || len(k.Public) != ed25519.PublicKeySize {
			continue
		}
		verify[k.ID] = verifyKey{pub: ed25519.PublicKey(k.Public), retired: k.RetiredAt}
		if signer != nil || !k.RetiredAt.IsZero() {
			continue
		}
		seed, err := s.key.Open(k.Private, "signing-key:"+k.ID)
		if err != nil {
			// Sealed under another secret key: it can verify, not sign.
			continue
		}
		priv := ed25519.NewKeyFromSeed(seed)
		signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: jose.JSONWebKey{Key: priv, KeyID: k.ID}},
			(&jose.SignerOptions{}).WithType(tokenType))
		if err != nil {
			return fmt.Errorf("auth: signer: %w", err)
		}
		signKID = k.ID
	}
	s.mu.Lock()
	s.signer, s.signKID, s.verify, s.revoked, s.lastReload = signer, signKID, verify, revoked, s.now()
	s.mu.Unlock()
	return nil
}

// CreateClient makes a client and returns its id and secret; the secret
// exists only in this return value.
func (s *Service) CreateClient(ctx context.Context, institutionID, name string, scopes []string) (id, clientSecret string, err error) {
	for _, sc := range scopes {
		if !slices.Contains(AllScopes, sc) {
			return "", "", fmt.Errorf("%w: unknown scope %q (valid: %s)", ErrInvalidScope, sc, strings.Join(AllScopes, ", "))
		}
	}
	if len(scopes) == 0 {
		return "", "", fmt.Errorf("%w: at least one scope", ErrInvalidScope)
	}
	id = "rc_" + secret.Hex(12)
	clientSecret = secret.Token(32)
	c := store.Client{ID: id, InstitutionID: institutionID, Name: name, SecretHash: hashSecret(clientSecret), Scopes: slices.Compact(slices.Sorted(slices.Values(scopes))), CreatedAt: s.now(), UpdatedAt: s.now()}
	if err := s.store.InsertClient(ctx, c); err != nil {
		return "", "", err
	}
	if err := s.auditClient(ctx, c.CreatedAt, "client.create", c); err != nil {
		return "", "", err
	}
	return id, clientSecret, nil
}

// hashSecret is a fast keyed hash: client secrets are 256-bit random
// values, so a slow password hash would add no safety and would make the
// token endpoint a denial-of-service lever.
func hashSecret(secret string) []byte {
	m := hmac.New(sha256.New, []byte("resetd/client-secret/v1"))
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// Authenticate checks a client's secret (or its previous one, during a
// rotation's overlap). Repeated failures for one client id from one source
// IP (the request's, from internal/request) are throttled (ErrThrottled)
// through the shared store, so every replica counts them, and the right
// secret from another IP still works. A disabled or deleted client is
// ErrInvalidClient.
func (s *Service) Authenticate(ctx context.Context, id, secret string) (store.Client, error) {
	// The token endpoint signs right after: pick up a rotated signing key
	// as verification does.
	s.refresh(ctx)
	now := s.now()
	key := failKey(id, request.ClientIP(ctx))
	var failures int
	if err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		failures, err = tx.Count(ctx, key, failWindow, now)
		return err
	}); err != nil {
		return store.Client{}, err
	}
	if failures >= maxFailures {
		return store.Client{}, ErrThrottled
	}
	c, err := s.store.Client(ctx, id)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Client{}, err
	}
	if err != nil || !secretMatches(c, secret, now) {
		if uerr := s.store.Update(ctx, func(tx store.Tx) error {
			_, err := tx.Hit(ctx, key, failWindow, now)
			return err
		}); uerr != nil {
			return store.Client{}, uerr
		}
		return store.Client{}, ErrInvalidClient
	}
	if !c.DisabledAt.IsZero() {
		return store.Client{}, ErrInvalidClient
	}
	return c, nil
}

// secretMatches compares against the current hash and the kept old one,
// always both, so the time taken does not tell which matched (or that an
// id is unknown).
func secretMatches(c store.Client, secret string, now time.Time) bool {
	zero := make([]byte, sha256.Size)
	want, old := c.SecretHash, c.OldSecretHash
	if len(want) == 0 {
		want = zero
	}
	oldLive := len(old) > 0 && now.Before(c.OldSecretUntil)
	if !oldLive {
		old = zero
	}
	h := hashSecret(secret)
	cur := hmac.Equal(h, want) && len(c.SecretHash) > 0
	prev := hmac.Equal(h, old) && oldLive
	return cur || prev
}

// Issue signs an access token for c with the requested scopes (all of the
// client's when none are asked for), bound to a certificate or DPoP key
// when a binding is given (SPEC §15).
func (s *Service) Issue(c store.Client, requested []string, bound ...Binding) (token string, scopes []string, err error) {
	scopes = c.Scopes
	if len(requested) > 0 {
		for _, r := range requested {
			if !slices.Contains(c.Scopes, r) {
				return "", nil, fmt.Errorf("%w: %q", ErrInvalidScope, r)
			}
		}
		scopes = slices.Compact(slices.Sorted(slices.Values(requested)))
	}
	now := s.now()
	std := jwt.Claims{
		Issuer:    s.issuer,
		Subject:   c.ID,
		Audience:  jwt.Audience{s.audience},
		IssuedAt:  jwt.NewNumericDate(now),
		NotBefore: jwt.NewNumericDate(now),
		Expiry:    jwt.NewNumericDate(now.Add(TokenTTL)),
		ID:        secret.Hex(12),
	}
	s.mu.RLock()
	signer := s.signer
	s.mu.RUnlock()
	if signer == nil {
		return "", nil, errors.New("auth: no signing key")
	}
	token, err = jwt.Signed(signer).Claims(std).Claims(customClaims{Scope: strings.Join(scopes, " "), Institution: c.InstitutionID, ClientID: c.ID, Cnf: cnf(bound)}).Serialize()
	if err != nil {
		return "", nil, fmt.Errorf("auth: sign: %w", err)
	}
	return token, scopes, nil
}

// Verify checks an access token's signature (alg pinned to EdDSA), issuer,
// audience and times. Only an unknown key id reads the database, at most
// once every few seconds, to pick up a key another replica made.
func (s *Service) Verify(ctx context.Context, token string) (Claims, error) {
	d := tokenDigest(token)
	if e, ok := s.verified.get(d); ok {
		// Checked before: the signature and claims are those of this very
		// string; what may have changed since is checked again.
		s.refresh(ctx)
		s.mu.RLock()
		vk, ok := s.verify[e.kid]
		revoked := s.revoked[e.std.Subject]
		s.mu.RUnlock()
		if !ok || !vk.retired.IsZero() || !vk.pub.Equal(e.pub) || revoked {
			return Claims{}, ErrInvalidToken
		}
		if err := e.std.ValidateWithLeeway(jwt.Expected{Issuer: s.issuer, AnyAudience: jwt.Audience{s.audience}, Time: s.now()}, clockLeeway); err != nil {
			return Claims{}, ErrInvalidToken
		}
		return e.claims.clone(), nil
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil || len(tok.Headers) != 1 {
		return Claims{}, ErrInvalidToken
	}
	if typ, _ := tok.Headers[0].ExtraHeaders[jose.HeaderType].(string); !strings.EqualFold(typ, tokenType) && !strings.EqualFold(typ, "application/"+tokenType) {
		return Claims{}, ErrInvalidToken
	}
	kid := tok.Headers[0].KeyID
	s.refresh(ctx)
	s.mu.RLock()
	vk, ok := s.verify[kid]
	revoked := s.revoked
	s.mu.RUnlock()
	if !ok || !vk.retired.IsZero() {
		return Claims{}, ErrInvalidToken
	}
	var std jwt.Claims
	var cc customClaims
	if err := tok.Claims(vk.pub, &std, &cc); err != nil {
		return Claims{}, ErrInvalidToken
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: s.issuer, AnyAudience: jwt.Audience{s.audience}, Time: s.now()}, clockLeeway); err != nil {
		return Claims{}, ErrInvalidToken
	}
	if std.Expiry == nil || std.IssuedAt == nil || std.Subject == "" || cc.Institution == "" {
		return Claims{}, ErrInvalidToken
	}
	if std.Expiry.Time().Sub(std.IssuedAt.Time()) > TokenTTL+lifetimeLeeway || revoked[std.Subject] {
		return Claims{}, ErrInvalidToken
	}
	out := Claims{ClientID: std.Subject, InstitutionID: cc.Institution, Scopes: strings.Fields(cc.Scope), Expiry: std.Expiry.Time()}
	if cc.Cnf != nil {
		out.X5T, out.JKT = cc.Cnf.X5T, cc.Cnf.JKT
	}
	s.verified.put(d, verifiedToken{kid: kid, pub: vk.pub, std: std, claims: out.clone()})
	return out, nil
}

// JWKS returns the public keys as a JSON Web Key Set.
func (s *Service) JWKS() jose.JSONWebKeySet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for kid, k := range s.verify {
		if !k.retired.IsZero() {
			continue // retired: its tokens are refused, so it is not published
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.pub, KeyID: kid, Algorithm: string(jose.EdDSA), Use: "sig"})
	}
	slices.SortFunc(set.Keys, func(a, b jose.JSONWebKey) int { return strings.Compare(a.KeyID, b.KeyID) })
	return set
}
