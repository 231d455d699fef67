package reset

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// A user write compares the new contacts with the user's prior ones: the
// user as stored, or — when the id was deleted less than
// contactChangeCooldown ago — the contacts it had then (SPEC §10: delete
// and re-create is a contact change, not a way around the cooldown).

// prior is the user a write replaces.
type prior struct {
	u       store.User
	existed bool
	// deletedAt is set when u is a deleted user's contacts, kept (sealed)
	// for the cooldown after its deletion.
	deletedAt time.Time
	// tombstone says a tombstone row is stored for the id (live or past
	// its cooldown), which a write of the user removes.
	tombstone bool
}

// had reports whether there is a prior user to compare contacts with.
func (p prior) had() bool { return p.existed || !p.deletedAt.IsZero() }

// tombstoned is what a deletion keeps of a user.
type tombstoned struct {
	Username string `json:"username"`
	Email    string `json:"email"`
	Phone    string `json:"phone"`
}

func tombstoneAD(institutionID, userID string) string {
	return "tombstone\x00" + institutionID + "\x00" + userID
}

// TombstoneAD is what a deleted user's contacts are sealed against, for
// re-sealing them under a new secret key (resetd keys rewrap).
func TombstoneAD(institutionID, userID string) string { return tombstoneAD(institutionID, userID) }

// keepTombstone seals a deleted user's contacts for the cooldown (none is
// kept when the cooldown is off or the user had no contact).
func (s *Service) keepTombstone(ctx context.Context, tx store.Tx, now time.Time, st Settings, u store.User) error {
	if err := tx.PruneTombstones(ctx, u.InstitutionID, now.Add(-time.Duration(st.ContactChangeCooldown)*time.Second)); err != nil {
		return err
	}
	if st.ContactChangeCooldown == 0 || (u.Email == "" && u.Phone == "") {
		return tx.DeleteTombstone(ctx, u.InstitutionID, u.ID)
	}
	b, err := json.Marshal(tombstoned{Username: u.Username, Email: u.Email, Phone: u.Phone})
	if err != nil {
		return err
	}
	return tx.PutTombstone(ctx, u.InstitutionID, u.ID, s.key.Seal(b, tombstoneAD(u.InstitutionID, u.ID)), now)
}

// priorOf reads the user a write of institutionID/userID replaces.
func (s *Service) priorOf(ctx context.Context, tx store.ReadTx, now time.Time, st Settings, institutionID, userID string) (prior, error) {
	u, err := tx.User(ctx, institutionID, userID)
	if err == nil {
		return prior{u: u, existed: true}, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return prior{}, err
	}
	return s.tombstonePrior(ctx, tx, now, st, institutionID, userID)
}

// tombstonePrior is the prior of an id with no stored user: a deleted
// user's contacts within the cooldown, else nothing.
func (s *Service) tombstonePrior(ctx context.Context, tx store.ReadTx, now time.Time, st Settings, institutionID, userID string) (prior, error) {
	sealed, at, err := tx.Tombstone(ctx, institutionID, userID)
	if errors.Is(err, store.ErrNotFound) {
		return prior{}, nil
	}
	if err != nil {
		return prior{}, err
	}
	if !now.Before(at.Add(time.Duration(st.ContactChangeCooldown) * time.Second)) {
		return prior{tombstone: true}, nil // past the cooldown: forgotten at the next write
	}
	b, err := s.key.Open(sealed, tombstoneAD(institutionID, userID))
	if err != nil {
		return prior{tombstone: true}, nil // sealed under a key no longer held: nothing to compare
	}
	var t tombstoned
	if err := json.Unmarshal(b, &t); err != nil {
		return prior{tombstone: true}, nil
	}
	return prior{u: store.User{InstitutionID: institutionID, ID: userID, Username: t.Username, Email: t.Email, Phone: t.Phone}, deletedAt: at, tombstone: true}, nil
}
