package reset

import (
	"context"
	"errors"
	"fmt"

	"github.com/resetd/resetd/internal/store"
)

// ImportRow is one line of a user import (header userId,username,email,phone
// and optionally passwordHash).
type ImportRow struct {
	Line     int
	UserID   string
	Username string
	Email    string
	Phone    string
	// PasswordHash, when not empty, is a hash from the old system in one
	// of the forms of SPEC §13; it replaces the user's password.
	PasswordHash string
}

// RowError says why a line was not imported.
type RowError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// ImportUsers upserts a batch of users in one transaction. A bad row is
// reported and skipped, never fatal to the rest. An existing user keeps
// their password (unless the row brings a passwordHash), facts and status; a changed contact starts its cooldown
// and notifies the old one, as with PUT. dryRun validates only.
func (s *Service) ImportUsers(ctx context.Context, a Actor, institutionID string, rows []ImportRow, dryRun bool) (imported int, rejected []RowError, err error) {
	if err := checkIDs(institutionID); err != nil {
		return 0, nil, err
	}
	reject := func(line int, err error) {
		var inv *InvalidError
		reason := err.Error()
		if errors.As(err, &inv) {
			reason = inv.Field + ": " + inv.Detail
		}
		rejected = append(rejected, RowError{Line: line, Reason: reason})
	}
	run := s.store.Update
	if dryRun {
		run = s.store.View
	}
	err = run(ctx, func(tx store.Tx) error {
		now := s.now()
		imported, rejected = 0, nil
		st, err := s.settingsIn(ctx, tx, institutionID)
		if err != nil {
			return err
		}
		seen := map[string]int{} // username key → line, within this batch
		for _, r := range rows {
			if !ValidID(r.UserID) {
				reject(r.Line, invalid("userId", "malformed user id"))
				continue
			}
			in := UserInput{Username: r.Username, Email: r.Email, Phone: r.Phone}
			if err := in.normalize(); err != nil {
				reject(r.Line, err)
				continue
			}
			var newHash string
			if r.PasswordHash != "" {
				var err error
				if newHash, err = importedHash(r.PasswordHash); err != nil {
					reject(r.Line, err)
					continue
				}
			}
			key := store.UsernameKey(in.Username)
			if prev, dup := seen[key]; dup {
				reject(r.Line, fmt.Errorf("username: also on line %d", prev))
				continue
			}
			// Checked before writing: a failed statement would abort a
			// PostgreSQL transaction, and with it the batch. One read gives
			// the stored row and the username's holder (SPEC §13's rate).
			old, owner, err := tx.UserAndUsernameOwner(ctx, institutionID, r.UserID, in.Username)
			if err != nil {
				return err
			}
			if owner != "" && owner != r.UserID {
				reject(r.Line, errors.New("username: belongs to another user"))
				continue
			}
			seen[key] = r.Line
			if old != nil {
				in.Status = old.Status
			}
			if !dryRun {
				if _, err := s.putUserTx(ctx, tx, now, st, a, institutionID, r.UserID, in, old, newHash, false); err != nil {
					return fmt.Errorf("reset: import line %d: %w", r.Line, err)
				}
			}
			imported++
		}
		if dryRun || imported == 0 {
			return nil
		}
		return s.audit(ctx, tx, now, a, "user.import", institutionID, "", fmt.Sprintf("imported %d", imported))
	})
	return imported, rejected, err
}
