package app

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/postgres"
	"github.com/resetd/resetd/internal/store/sqlite"
)

// The secret key, fail closed (SPEC §9). Before the store is opened for
// real (which creates, migrates and writes), the database is only looked
// at, read-only: a command that is refused leaves every byte as it was.

// ErrNoKey: no RESETD_SECRET_KEY and no trial key stored by `serve --dev`.
var ErrNoKey = errors.New("no secret key: set RESETD_SECRET_KEY (32 bytes as 64 hex characters or base64; a comma-separated list is a keyring, current first). Only `serve --dev` generates one, for a trial")

// ErrKeyMismatch: the key given is not one the database has used.
var ErrKeyMismatch = errors.New("the secret key does not match this database (RESETD_SECRET_KEY names none of the keys it was set up with; to rotate, give NEW,OLD)")

// keyPlan is what Open decided about the key before opening the store.
type keyPlan struct {
	ring *seal.Key
	// trial is raw key material to store as the trial key (serve --dev on
	// a database without one); nil otherwise.
	trial []byte
}

// peekKeys looks at the database named by dsn without changing it.
func peekKeys(ctx context.Context, dsn string) (store.KeyInfo, error) {
	if dsn == "" {
		dsn = config.DB
	}
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "sqlite:"), "?")
		return sqlite.PeekKeys(ctx, path)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return postgres.PeekKeys(ctx, dsn)
	default:
		return store.KeyInfo{}, fmt.Errorf("app: --db must be sqlite:PATH or postgres://…, not %q", dsn)
	}
}

// planKey decides which keyring a command runs with, from what the
// database holds, before anything is written.
func planKey(cfg Config, info store.KeyInfo) (keyPlan, error) {
	if cfg.SecretKey == "" {
		switch {
		case info.TrialKey != nil:
			ring, err := seal.New(info.TrialKey)
			if err != nil {
				return keyPlan{}, fmt.Errorf("app: stored trial key: %w", err)
			}
			cfg.Logger.Warn("trial setup: using the secret key stored in the database by serve --dev; anyone with a copy of the database has it. Set RESETD_SECRET_KEY for production (docs/DEPLOYMENT.md)")
			return keyPlan{ring: ring}, nil
		case cfg.Dev:
			raw := seal.Generate()
			ring, err := seal.New(raw)
			return keyPlan{ring: ring, trial: raw}, err
		default:
			return keyPlan{}, ErrNoKey
		}
	}
	ring, err := seal.Parse(cfg.SecretKey)
	if err != nil {
		return keyPlan{}, fmt.Errorf("app: RESETD_SECRET_KEY: %w", err)
	}
	checks := info.Checks
	if info.TrialKey != nil {
		if k, err := seal.New(info.TrialKey); err == nil {
			checks = append(checks, k.Checks()[0])
		}
	}
	known := false
	for _, c := range checks {
		known = known || ring.Knows(c)
	}
	switch {
	case known:
	case len(checks) > 0:
		return keyPlan{}, ErrKeyMismatch
	case info.SigningKey != nil:
		// A database from before check values: its signing key tells.
		if _, err := ring.Open(info.SigningKey.Private, "signing-key:"+info.SigningKey.ID); err != nil {
			return keyPlan{}, ErrKeyMismatch
		}
	}
	return keyPlan{ring: ring}, nil
}

// recordKey stores what the plan says must be kept: the trial key of a
// first `serve --dev`, and the current key's check value. Concurrent
// first starts agree on one trial key (MetaSetIfAbsent).
func recordKey(ctx context.Context, st store.Store, p keyPlan) (*seal.Key, error) {
	ring := p.ring
	if p.trial != nil {
		raw, err := st.MetaSetIfAbsent(ctx, store.MetaTrialKey, p.trial)
		if err != nil {
			return nil, err
		}
		if ring, err = seal.New(raw); err != nil {
			return nil, err
		}
	}
	if _, err := st.MetaSetIfAbsent(ctx, store.MetaKeyCheck+string(ring.IDs()[0]), ring.Checks()[0]); err != nil {
		return nil, err
	}
	return ring, nil
}
