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
	// observed holds, by line, the user a write found when the notices
	// rendered for that line did not fit (another line of the batch was
	// refused, or a concurrent write): the next try renders for it.
	observed := map[int]knownUser{}
	for try := 0; ; try++ {
		// Read and render first (see prepare.go), then write.
		var inst store.Institution
		var notices map[int]contactNotices
		if !dryRun {
			if inst, notices, err = s.importNotices(ctx, institutionID, rows, observed); err != nil {
				return 0, nil, err
			}
		}
		run := s.store.Update
		if dryRun {
			// A dry run only reads: it runs in a View, and its Tx carries
			// the View's reads and no writers (the body below writes only
			// when !dryRun).
			run = func(ctx context.Context, fn func(store.Tx) error) error {
				return s.store.View(ctx, func(rtx store.ReadTx) error { return fn(store.Tx{ReadTx: rtx}) })
			}
		}
		err = run(ctx, func(tx store.Tx) error {
			now := s.now()
			imported, rejected = 0, nil
			fresh, st, err := s.institutionIn(ctx, tx, institutionID)
			if err != nil {
				return err
			}
			if !dryRun && !sameSettings(inst, fresh) {
				return errStale
			}
			seen := map[string]int{} // username key → line, within this batch
			stale := false
			for _, r := range rows {
				in, ok := importInput(r, reject)
				if !ok {
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
				// PostgreSQL transaction, and with it the batch. One read
				// gives the stored row and the username's holder (SPEC §13's
				// import rate).
				found, owner, err := tx.UserAndUsernameOwner(ctx, institutionID, r.UserID, in.Username)
				if err != nil {
					return err
				}
				if owner != "" && owner != r.UserID {
					reject(r.Line, errors.New("username: belongs to another user"))
					continue
				}
				seen[key] = r.Line
				var old store.User
				existed := found != nil
				if existed {
					old = *found
					in.Status = old.Status
				}
				if !dryRun && notices[r.Line].stale(old, existed) {
					observed[r.Line] = knownUser{old, existed}
					stale = true
					continue
				}
				if !dryRun && !stale {
					if _, err := s.putUserTx(ctx, tx, now, st, a, institutionID, r.UserID, in, found, newHash, notices[r.Line], false); err != nil {
						return fmt.Errorf("reset: import line %d: %w", r.Line, err)
					}
				}
				imported++
			}
			if stale {
				return errStale
			}
			if dryRun || imported == 0 {
				return nil
			}
			return s.audit(ctx, tx, now, a, "user.import", institutionID, "", fmt.Sprintf("imported %d", imported))
		})
		if err = staleOrDone(err, try); err != errStale {
			break
		}
	}
	return imported, rejected, err
}

// importInput validates one row as a user write (reject is told why not).
func importInput(r ImportRow, reject func(int, error)) (UserInput, bool) {
	if !ValidID(r.UserID) {
		reject(r.Line, invalid("userId", "malformed user id"))
		return UserInput{}, false
	}
	in := UserInput{Username: r.Username, Email: r.Email, Phone: r.Phone}
	if err := in.normalize(); err != nil {
		reject(r.Line, err)
		return UserInput{}, false
	}
	return in, true
}

// knownUser is a user as a batch's writes will find it.
type knownUser struct {
	u       store.User
	existed bool
}

// importNotices renders, outside the write transaction, the contact-change
// notices a batch sends (by line), following the batch's own writes when a
// user appears on more than one line.
func (s *Service) importNotices(ctx context.Context, institutionID string, rows []ImportRow, observed map[int]knownUser) (store.Institution, map[int]contactNotices, error) {
	var inst store.Institution
	var st Settings
	current := map[string]knownUser{}
	err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		if inst, st, err = s.institutionIn(ctx, tx, institutionID); err != nil {
			return err
		}
		// One read for the batch, not one per row (SPEC §13's import rate).
		ids := make([]string, 0, len(rows))
		for _, r := range rows {
			if ValidID(r.UserID) {
				ids = append(ids, r.UserID)
			}
		}
		found, err := tx.UsersByID(ctx, institutionID, ids)
		for id, u := range found {
			current[id] = knownUser{u, true}
		}
		return err
	})
	if err != nil {
		return inst, nil, err
	}
	out := map[int]contactNotices{}
	for _, r := range rows {
		in, ok := importInput(r, func(int, error) {})
		if !ok {
			continue
		}
		k := current[r.UserID]
		if o, ok := observed[r.Line]; ok {
			k = o
		}
		n, err := s.renderContactNotices(st, k.u, k.existed, in)
		if err != nil {
			return inst, nil, err
		}
		out[r.Line] = n
		k.u.Username, k.u.Email, k.u.Phone, k.existed = in.Username, in.Email, in.Phone, true
		current[r.UserID] = k
	}
	return inst, out, nil
}
