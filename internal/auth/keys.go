package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resetd/resetd/internal/seal"
)

// refreshEvery bounds how old a replica's view of signing keys and
// revoked clients may be: a retired key or a disabled client is refused
// by every replica within refreshEvery plus one reread (SPEC §9: 10 s),
// while a request reads the database at most once per refreshEvery, not
// once per token.
const refreshEvery = 4 * time.Second

// refresh rereads the snapshot when it is older than refreshEvery. One
// request rereads; concurrent ones go on with the snapshot they have. A
// failed reread keeps the old snapshot (and is retried by the next
// request): the database being briefly away does not fail every token.
func (s *Service) refresh(ctx context.Context) {
	s.mu.RLock()
	stale := s.now().Sub(s.lastReload) >= refreshEvery
	s.mu.RUnlock()
	if !stale || !s.refreshing.TryLock() {
		return
	}
	defer s.refreshing.Unlock()
	_ = s.reload(ctx)
}

// Signing-key states (resetd keys list).
const (
	KeyActive    = "active"
	KeyVerifying = "verifying"
	KeyRetired   = "retired"
)

// ErrRetireActive refuses retiring the key that signs: rotate first.
var ErrRetireActive = errors.New("auth: the active signing key cannot be retired; run resetd keys rotate first")

// ErrNoSuchKey is an unknown kid.
var ErrNoSuchKey = errors.New("auth: no such signing key")

// KeyInfo is one signing key as `resetd keys list` shows it.
type KeyInfo struct {
	KID       string    `json:"kid"`
	Alg       string    `json:"alg"`
	CreatedAt time.Time `json:"created"`
	State     string    `json:"state"`
	RetiredAt time.Time `json:"retired,omitzero"`
	// SealedBy is the id of the secret key its private half is sealed
	// under ("" when none of the ring's).
	SealedBy seal.ID `json:"sealedBy"`
}

// Keys lists the signing keys, newest first. The active one is the newest
// not retired: the key every replica signs with once it has reloaded.
func (s *Service) Keys(ctx context.Context) ([]KeyInfo, error) {
	keys, err := s.store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(keys))
	active := false
	for _, k := range keys {
		st := KeyVerifying
		switch {
		case !k.RetiredAt.IsZero():
			st = KeyRetired
		case !active:
			st, active = KeyActive, true
		}
		out = append(out, KeyInfo{KID: k.ID, Alg: k.Alg, CreatedAt: k.CreatedAt, State: st, RetiredAt: k.RetiredAt, SealedBy: s.key.SealedBy(k.Private)})
	}
	return out, nil
}

// Retire retires a signing key: every replica refuses its tokens and drops
// it from the JWKS within refreshEvery.
func (s *Service) Retire(ctx context.Context, kid string) error {
	keys, err := s.store.SigningKeys(ctx)
	if err != nil {
		return err
	}
	infos, err := s.Keys(ctx)
	if err != nil {
		return err
	}
	for i, k := range keys {
		if k.ID != kid {
			continue
		}
		switch infos[i].State {
		case KeyActive:
			return ErrRetireActive
		case KeyRetired:
			return nil
		}
		k.RetiredAt = s.now()
		if err := s.store.UpdateSigningKey(ctx, k); err != nil {
			return err
		}
		return s.reload(ctx)
	}
	return fmt.Errorf("%w: %q", ErrNoSuchKey, kid)
}

// RewrapSigningKeys re-seals under the current secret key every signing
// key sealed under an older one of the ring, and returns how many.
func (s *Service) RewrapSigningKeys(ctx context.Context) (int, error) {
	keys, err := s.store.SigningKeys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, k := range keys {
		if s.key.Current(k.Private) {
			continue
		}
		seed, err := s.key.Open(k.Private, "signing-key:"+k.ID)
		if err != nil {
			continue // under a key not in the ring: keys status shows it
		}
		k.Private = s.key.Seal(seed, "signing-key:"+k.ID)
		if err := s.store.UpdateSigningKey(ctx, k); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// SealedSigningKeys returns the sealed private halves, for counting what
// depends on each secret key.
func (s *Service) SealedSigningKeys(ctx context.Context) ([][]byte, error) {
	keys, err := s.store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = k.Private
	}
	return out, nil
}
