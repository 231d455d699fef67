package delivery

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// Webhook secrets (SPEC §9). An institution's secret is stored sealed in
// the meta table, so it survives a rotation of RESETD_SECRET_KEY (rewrap
// re-seals it) and can itself be rotated with an overlap during which
// every event carries a signature under both the new and the old secret.

// MaxWebhookOverlap bounds --keep-old of a webhook-secret rotation.
const MaxWebhookOverlap = 168 * time.Hour

const webhookMetaPrefix = "webhook_secret:"

// MetaStore is where webhook secrets are kept.
type MetaStore interface {
	Meta(ctx context.Context, key string) ([]byte, error)
	MetaPut(ctx context.Context, key string, value []byte) error
	MetaSetIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
	MetaPrefix(ctx context.Context, prefix string) (map[string][]byte, error)
}

type storedWebhookSecret struct {
	Current       []byte    `json:"current"`
	Previous      []byte    `json:"previous,omitempty"`
	PreviousUntil time.Time `json:"previousUntil,omitzero"`
}

func webhookAD(institutionID string) string { return "webhook-secret:" + institutionID }

// derivedWebhookSecret is the secret versions before stored secrets
// derived from the server key: an institution's first stored secret is
// this one, so receivers set up earlier keep verifying.
func derivedWebhookSecret(key *seal.Key, institutionID string) string {
	return "whsec_" + hex.EncodeToString(key.MAC("webhook", []byte(institutionID)))
}

func loadWebhookSecret(ctx context.Context, st MetaStore, key *seal.Key, institutionID string) (storedWebhookSecret, error) {
	var sw storedWebhookSecret
	raw, err := st.Meta(ctx, webhookMetaPrefix+institutionID)
	if errors.Is(err, store.ErrNotFound) {
		first, _ := json.Marshal(storedWebhookSecret{Current: key.Seal([]byte(derivedWebhookSecret(key, institutionID)), webhookAD(institutionID))})
		raw, err = st.MetaSetIfAbsent(ctx, webhookMetaPrefix+institutionID, first)
	}
	if err != nil {
		return sw, err
	}
	if err := json.Unmarshal(raw, &sw); err != nil {
		return sw, fmt.Errorf("delivery: webhook secret: %w", err)
	}
	return sw, nil
}

// WebhookSecrets returns the secrets events are signed with now: the
// current one first, then the previous one while its overlap lasts.
func WebhookSecrets(ctx context.Context, st MetaStore, key *seal.Key, institutionID string, now time.Time) ([]string, error) {
	sw, err := loadWebhookSecret(ctx, st, key, institutionID)
	if err != nil {
		return nil, err
	}
	cur, err := key.Open(sw.Current, webhookAD(institutionID))
	if err != nil {
		return nil, fmt.Errorf("delivery: webhook secret of %s: %w", institutionID, err)
	}
	out := []string{string(cur)}
	if len(sw.Previous) > 0 && now.Before(sw.PreviousUntil) {
		if prev, err := key.Open(sw.Previous, webhookAD(institutionID)); err == nil {
			out = append(out, string(prev))
		}
	}
	return out, nil
}

// RotateWebhookSecret makes a new secret and returns it; the old one still
// signs every event (beside the new) for keepOld.
func RotateWebhookSecret(ctx context.Context, st MetaStore, key *seal.Key, institutionID string, keepOld time.Duration, now time.Time) (string, error) {
	if keepOld < 0 || keepOld > MaxWebhookOverlap {
		return "", fmt.Errorf("delivery: --keep-old must be between 0 and %s", MaxWebhookOverlap)
	}
	sw, err := loadWebhookSecret(ctx, st, key, institutionID)
	if err != nil {
		return "", err
	}
	fresh := "whsec_" + secret.Hex(32)
	next := storedWebhookSecret{Current: key.Seal([]byte(fresh), webhookAD(institutionID))}
	if keepOld > 0 {
		next.Previous, next.PreviousUntil = sw.Current, now.Add(keepOld)
	}
	b, err := json.Marshal(next)
	if err != nil {
		return "", fmt.Errorf("delivery: webhook secret: %w", err)
	}
	return fresh, st.MetaPut(ctx, webhookMetaPrefix+institutionID, b)
}

// SealedWebhookSecrets returns every stored sealed webhook secret, for
// counting what depends on each server key.
func SealedWebhookSecrets(ctx context.Context, st MetaStore) ([][]byte, error) {
	all, err := st.MetaPrefix(ctx, webhookMetaPrefix)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, raw := range all {
		var sw storedWebhookSecret
		if json.Unmarshal(raw, &sw) != nil {
			continue
		}
		out = append(out, sw.Current)
		if len(sw.Previous) > 0 {
			out = append(out, sw.Previous)
		}
	}
	return out, nil
}

// RewrapWebhookSecrets re-seals stored webhook secrets under the current
// key and returns how many values it re-sealed.
func RewrapWebhookSecrets(ctx context.Context, st MetaStore, key *seal.Key) (int, error) {
	all, err := st.MetaPrefix(ctx, webhookMetaPrefix)
	if err != nil {
		return 0, err
	}
	n := 0
	for k, raw := range all {
		inst := strings.TrimPrefix(k, webhookMetaPrefix)
		var sw storedWebhookSecret
		if json.Unmarshal(raw, &sw) != nil {
			continue
		}
		changed := false
		for _, v := range []*[]byte{&sw.Current, &sw.Previous} {
			if len(*v) == 0 || key.Current(*v) {
				continue
			}
			plain, err := key.Open(*v, webhookAD(inst))
			if err != nil {
				continue
			}
			*v, changed = key.Seal(plain, webhookAD(inst)), true
			n++
		}
		if !changed {
			continue
		}
		b, _ := json.Marshal(sw)
		if err := st.MetaPut(ctx, k, b); err != nil {
			return n, err
		}
	}
	return n, nil
}
