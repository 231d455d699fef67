package reset

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	// Locale is the user's language (BCP 47), the column "locale".
	Locale string
	// PasswordHash, when not empty, is a hash from the old system in one
	// of the forms of SPEC §13; it replaces the user's password.
	PasswordHash string
}

// RowError says why a line was not imported.
type RowError struct {
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// ImportOptions say how an import writes.
type ImportOptions struct {
	// DryRun validates and counts, writing nothing.
	DryRun bool
	// Replace writes every cell as given: an empty one clears the stored
	// value. Without it an empty cell leaves an existing user's value alone.
	Replace bool
}

// ImportResult is what a batch did (or, dry, would do).
type ImportResult struct {
	Imported int        `json:"imported"`
	Rejected []RowError `json:"rejected"`
	// ContactsChanged counts emails and phones set, replaced or cleared on
	// existing users; NoticesQueued the "your contact was changed"
	// messages that go to the replaced ones.
	ContactsChanged int `json:"contactsChanged"`
	NoticesQueued   int `json:"noticesQueued"`
}

// ImportUsers upserts a batch of users in one transaction. A bad row is
// reported and skipped, never fatal to the rest. An existing user keeps
// their password (unless the row brings a passwordHash), facts and status, and (without Replace) every value
// whose cell is empty; a changed contact starts its cooldown and notifies
// the old one, as with PUT.
func (s *Service) ImportUsers(ctx context.Context, a Actor, institutionID string, rows []ImportRow, opt ImportOptions) (res ImportResult, err error) {
	res.Rejected = []RowError{}
	if err := checkIDs(institutionID); err != nil {
		return res, err
	}
	dryRun := opt.DryRun
	var imported int
	var rejected []RowError
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
	observed := map[int]prior{}
	for try := 0; ; try++ {
		// Read and render first (see prepare.go), then write.
		var inst store.Institution
		var notices map[int]contactNotices
		if !dryRun {
			if inst, notices, err = s.importNotices(ctx, institutionID, rows, opt.Replace, observed); err != nil {
				return res, err
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
			res.ContactsChanged, res.NoticesQueued = 0, 0
			// The batch's own writes, for a dry run that writes none.
			written := map[string]prior{}
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
				in, ok := importInput(r, opt.Replace, reject)
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
				p, err := s.priorOf(ctx, tx, now, st, institutionID, r.UserID)
				if err != nil {
					return err
				}
				if w, ok := written[r.UserID]; ok && dryRun {
					// A dry run writes nothing: an earlier line's "write" is
					// what this line would find.
					p = w
				}
				old, existed := p.u, p.existed
				merged, err := in.over(old, existed).complete()
				if err != nil {
					reject(r.Line, err)
					continue
				}
				if existed {
					merged.Status = old.Status
				}
				key := store.UsernameKey(merged.Username)
				if prev, dup := seen[key]; dup {
					reject(r.Line, fmt.Errorf("username: also on line %d", prev))
					continue
				}
				// Checked before writing: a failed statement would abort a
				// PostgreSQL transaction, and with it the batch.
				if other, err := tx.UserByUsername(ctx, institutionID, merged.Username); err == nil && other.ID != r.UserID {
					reject(r.Line, errors.New("username: belongs to another user"))
					continue
				} else if err != nil && !errors.Is(err, store.ErrNotFound) {
					return err
				}
				seen[key] = r.Line
				if !dryRun && notices[r.Line].stale(p) {
					observed[r.Line] = p
					stale = true
					continue
				}
				if !dryRun && !stale {
					if _, err := s.putUserTx(ctx, tx, now, st, a, institutionID, r.UserID, merged, newHash, notices[r.Line], changedNotices{}, false, &p); err != nil {
						return fmt.Errorf("reset: import line %d: %w", r.Line, err)
					}
				}
				changed, queued := s.contactChanges(old, existed, merged)
				res.ContactsChanged += changed
				res.NoticesQueued += queued
				written[r.UserID] = prior{u: store.User{ID: r.UserID, Username: merged.Username, Email: merged.Email, Phone: merged.Phone, Status: merged.Status, Locale: merged.Locale}, existed: true}
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
	res.Imported = imported
	res.Rejected = append(res.Rejected, rejected...)
	return res, err
}

// importInput validates one row as a user write (reject is told why not).
// Without replace an empty cell keeps the stored value.
func importInput(r ImportRow, replace bool, reject func(int, error)) (UserInput, bool) {
	if !ValidID(r.UserID) {
		reject(r.Line, invalid("userId", "malformed user id"))
		return UserInput{}, false
	}
	in := UserInput{Username: r.Username, Email: r.Email, Phone: r.Phone, Locale: r.Locale}
	if !replace {
		in.Keep = Keep{Username: r.Username == "", Email: r.Email == "", Phone: r.Phone == "", Locale: r.Locale == ""}
	}
	if err := in.normalize(); err != nil {
		reject(r.Line, err)
		return UserInput{}, false
	}
	return in, true
}

// importNotices renders, outside the write transaction, the contact-change
// notices a batch sends (by line), following the batch's own writes when a
// user appears on more than one line.
func (s *Service) importNotices(ctx context.Context, institutionID string, rows []ImportRow, replace bool, observed map[int]prior) (store.Institution, map[int]contactNotices, error) {
	var inst store.Institution
	var st Settings
	current := map[string]prior{}
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
		if err != nil {
			return err
		}
		for id, u := range found {
			current[id] = prior{u: u, existed: true}
		}
		// An id not stored may have been deleted within the cooldown: its
		// old contacts count (SPEC §10).
		now := s.now()
		for _, id := range ids {
			if _, ok := current[id]; ok {
				continue
			}
			if current[id], err = s.tombstonePrior(ctx, tx, now, st, institutionID, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return inst, nil, err
	}
	out := map[int]contactNotices{}
	for _, r := range rows {
		in, ok := importInput(r, replace, func(int, error) {})
		if !ok {
			continue
		}
		k := current[r.UserID]
		if o, ok := observed[r.Line]; ok {
			k = o
		}
		in = in.over(k.u, k.existed)
		if in.Username == "" {
			continue // a new user without a username: the write rejects it
		}
		n, err := s.renderContactNotices(st, k, in)
		if err != nil {
			return inst, nil, err
		}
		out[r.Line] = n
		k.u.Username, k.u.Email, k.u.Phone, k.u.Locale, k.existed, k.deletedAt = in.Username, in.Email, in.Phone, in.Locale, true, time.Time{}
		current[r.UserID] = k
	}
	return inst, out, nil
}
