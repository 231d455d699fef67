package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
)

// Kinds of record that depend on the secret key (resetd keys status).
const (
	RecordSigningKeys    = "signing_keys"
	RecordQueuedMessages = "queued_messages"
	RecordOTPs           = "otps"
	RecordFacts          = "facts"
	RecordWebhookSecrets = "webhook_secrets"
	RecordTombstones     = "tombstones"
)

// KeyUse is how many records of each kind depend on one secret key.
type KeyUse struct {
	KeyID   seal.ID        `json:"keyId"`
	Current bool           `json:"current"`
	Records map[string]int `json:"records"`
}

// KeyStatus is, for each key of the ring, what still depends on it; Other
// counts records made under no key of the ring (a key already dropped)
// or before key ids existed, by kind.
type KeyStatus struct {
	Keys  []KeyUse       `json:"keys"`
	Other map[string]int `json:"other"`
}

// KeyStatus counts, per key of the ring, the records that depend on it.
func (a *App) KeyStatus(ctx context.Context) (KeyStatus, error) {
	st := KeyStatus{Other: map[string]int{}}
	index := map[seal.ID]int{}
	for i, id := range a.Key.IDs() {
		index[id] = i
		st.Keys = append(st.Keys, KeyUse{KeyID: id, Current: i == 0, Records: map[string]int{
			RecordSigningKeys: 0, RecordQueuedMessages: 0, RecordOTPs: 0, RecordFacts: 0, RecordWebhookSecrets: 0, RecordTombstones: 0,
		}})
	}
	count := func(kind string, v []byte) {
		if i, ok := index[a.Key.SealedBy(v)]; ok && a.Key.SealedBy(v) != "" {
			st.Keys[i].Records[kind]++
			return
		}
		st.Other[kind]++
	}
	sk, err := a.Auth.SealedSigningKeys(ctx)
	if err != nil {
		return st, err
	}
	for _, v := range sk {
		count(RecordSigningKeys, v)
	}
	recs, err := a.Store.KeyedRecords(ctx, a.cfg.Now())
	if err != nil {
		return st, err
	}
	for _, v := range recs.OTPs {
		count(RecordOTPs, v)
	}
	for _, f := range recs.Facts {
		count(RecordFacts, factBytes(f))
	}
	for _, tb := range recs.Tombstones {
		count(RecordTombstones, tb.Sealed)
	}
	for _, d := range recs.Messages {
		count(RecordQueuedMessages, d.Message)
	}
	for _, j := range recs.Jobs {
		sealed, ok, err := delivery.SealedOf(j.Kind, j.Args)
		switch {
		case !ok, err == nil && len(sealed) == 0: // no send job, or its message is in its delivery
		case err != nil:
			st.Other[RecordQueuedMessages]++
		default:
			count(RecordQueuedMessages, sealed)
		}
	}
	ws, err := delivery.SealedWebhookSecrets(ctx, a.Store)
	if err != nil {
		return st, err
	}
	for _, v := range ws {
		count(RecordWebhookSecrets, v)
	}
	return st, nil
}

func factBytes(hexMAC string) []byte {
	var b []byte
	if _, err := fmt.Sscanf(hexMAC, "%x", &b); err != nil {
		return nil
	}
	return b
}

// Rewrapped counts what Rewrap re-sealed, by kind.
type Rewrapped map[string]int

// Rewrap re-seals under the current key what can be re-sealed: signing
// keys, queued messages, webhook secrets and deleted users' tombstones. OTPs expire on their own
// (minutes) and facts are re-keyed when they next verify.
func (a *App) Rewrap(ctx context.Context) (Rewrapped, error) {
	out := Rewrapped{}
	n, err := a.Auth.RewrapSigningKeys(ctx)
	out[RecordSigningKeys] = n
	if err != nil {
		return out, err
	}
	recs, err := a.Store.KeyedRecords(ctx, a.cfg.Now())
	if err != nil {
		return out, err
	}
	for _, d := range recs.Messages {
		b, changed, err := delivery.ResealMessage(a.Key, d.MessageRef, d.Message)
		if err != nil || !changed {
			continue // current already, or under no key of the ring: keys status shows it
		}
		ok, err := a.Store.SetDeliveryMessage(ctx, d.ID, b)
		if err != nil {
			return out, err
		}
		if ok {
			out[RecordQueuedMessages]++
		}
	}
	// Jobs queued by an earlier version carry their message themselves.
	for _, j := range recs.Jobs {
		b, changed, err := delivery.ResealJob(a.Key, j.Kind, j.Args)
		if err != nil || !changed {
			continue // no send job, or under no key of the ring: keys status shows it
		}
		ok, err := a.Store.SetJobArgs(ctx, j.ID, b)
		if err != nil {
			return out, err
		}
		if ok {
			out[RecordQueuedMessages]++
		}
	}
	for _, tb := range recs.Tombstones {
		if a.Key.Current(tb.Sealed) {
			continue
		}
		ad := reset.TombstoneAD(tb.InstitutionID, tb.UserID)
		plain, err := a.Key.Open(tb.Sealed, ad)
		if err != nil {
			continue // under no key of the ring: keys status shows it
		}
		fresh := a.Key.Seal(plain, ad)
		resealed := false
		err = a.Store.Update(ctx, func(tx store.Tx) error {
			resealed = false
			// Only the tombstone read above: one replaced or forgotten
			// meanwhile (the user re-created) is left as it is now.
			sealed, _, err := tx.Tombstone(ctx, tb.InstitutionID, tb.UserID)
			if errors.Is(err, store.ErrNotFound) || (err == nil && !bytes.Equal(sealed, tb.Sealed)) {
				return nil
			}
			if err != nil {
				return err
			}
			resealed = true
			return tx.PutTombstone(ctx, tb.InstitutionID, tb.UserID, fresh, tb.DeletedAt)
		})
		if err != nil {
			return out, err
		}
		if resealed {
			out[RecordTombstones]++
		}
	}
	n, err = delivery.RewrapWebhookSecrets(ctx, a.Store, a.Key)
	out[RecordWebhookSecrets] = n
	return out, err
}
