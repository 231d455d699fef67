package reset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// Messages are rendered before a flow's write transaction: an
// institution's templates are its own input, and rendering them while
// holding the database's one writer (SQLite) would let one tenant's
// template hold up every other tenant's writes. So a flow reads what it
// renders from, renders, then writes in one transaction that reads again
// and goes ahead only if what was rendered from is unchanged (else the
// flow starts over, a bounded number of times).

// errStale says that what a flow rendered from changed before its write.
var errStale = errors.New("reset: changed while rendering")

// staleRetries bounds how often a flow starts over after errStale.
const staleRetries = 3

// snapshot is what a flow's messages depend on: the institution's stored
// settings document and the user's name and contacts.
type snapshot struct {
	settings               string
	exists                 bool
	username, email, phone string
}

func snapshotOf(in store.Institution, u store.User, exists bool) snapshot {
	s := snapshot{settings: string(in.Settings), exists: exists}
	if exists {
		s.username, s.email, s.phone = u.Username, u.Email, u.Phone
	}
	return s
}

// institutionIn reads an institution and decodes its settings.
func (s *Service) institutionIn(ctx context.Context, tx store.ReadTx, institutionID string) (store.Institution, Settings, error) {
	in, err := tx.Institution(ctx, institutionID)
	if err != nil {
		return in, Settings{}, mapNotFound(err)
	}
	st, err := s.decode(in)
	return in, st, err
}

// institutionUserIn reads an institution, its settings and one of its
// users in one query.
func (s *Service) institutionUserIn(ctx context.Context, tx store.ReadTx, institutionID, userID string) (store.Institution, Settings, store.User, error) {
	in, u, err := tx.InstitutionUser(ctx, institutionID, userID)
	if err != nil {
		return in, Settings{}, u, mapNotFound(err)
	}
	st, err := s.decode(in)
	return in, st, u, err
}

// renderedFor runs a flow on one user in two steps: prepare renders from
// a read of the institution and the user, outside any write transaction;
// write then runs in one transaction on a fresh read of both, which is
// the same as prepare saw (else the flow starts over). Where writers do
// not wait for each other, both run in the one write transaction.
func (s *Service) renderedFor(ctx context.Context, institutionID, userID string,
	prepare func(st Settings, u store.User) error,
	write func(tx store.Tx, now time.Time, st Settings, u store.User) error,
) error {
	if !s.store.SerialWrites() {
		// Writers run side by side (PostgreSQL): prepare in the write
		// transaction, on its one read, a round trip fewer and no
		// snapshot to compare.
		return s.store.Update(ctx, func(tx store.Tx) error {
			now := s.now()
			_, st, u, err := s.institutionUserIn(ctx, tx, institutionID, userID)
			if err != nil {
				return err
			}
			if err := prepare(st, u); err != nil {
				return err
			}
			return write(tx, now, st, u)
		})
	}
	for try := 0; ; try++ {
		var snap snapshot
		var st Settings
		var u store.User
		// One statement, no transaction: the write below reads both again.
		in, user, err := s.store.InstitutionUser(ctx, institutionID, userID)
		if err != nil {
			return mapNotFound(err)
		}
		if st, err = s.decode(in); err != nil {
			return err
		}
		u, snap = user, snapshotOf(in, user, true)
		if err := prepare(st, u); err != nil {
			return err
		}
		err = s.store.Update(ctx, func(tx store.Tx) error {
			now := s.now()
			in, st, u, err := s.institutionUserIn(ctx, tx, institutionID, userID)
			if err != nil {
				return err
			}
			if snapshotOf(in, u, true) != snap {
				return errStale
			}
			return write(tx, now, st, u)
		})
		if err := staleOrDone(err, try); err != errStale {
			return err
		}
	}
}

// staleOrDone passes errStale on while the flow may start over, and turns
// it into a conflict after the last try.
func staleOrDone(err error, try int) error {
	if !errors.Is(err, errStale) {
		return err
	}
	if try >= staleRetries {
		return fmt.Errorf("%w: the record kept changing; try again", ErrConflict)
	}
	return errStale
}

// dispute is a "this wasn't me" token made before the write that stores it.
type dispute struct {
	hash []byte
	link string
}

func (s *Service) newDispute() dispute {
	tok, hash := newToken()
	return dispute{hash: hash, link: s.publicURL + "/reset/dispute?token=" + tok}
}

// store records the dispute token for u in tx.
func (d dispute) store(ctx context.Context, tx store.Tx, u store.User, now time.Time) error {
	return tx.InsertToken(ctx, d.token(u, now))
}

// token is the dispute token's row, for a caller that inserts it with
// others (InsertTokens).
func (d dispute) token(u store.User, now time.Time) store.Token {
	return store.Token{Hash: d.hash, InstitutionID: u.InstitutionID, UserID: u.ID, Purpose: PurposeDispute, CreatedAt: now, ExpiresAt: now.Add(disputeLifetime)}
}

// contactNotices are the "your contact was changed" messages a user write
// sends, rendered for the prior contacts they were rendered from.
type contactNotices struct {
	// The prior user the notices were rendered for: whether there was one
	// (stored, or deleted within the cooldown), and its name and contacts.
	had                             bool
	deletedAt                       time.Time
	forUsername, forEmail, forPhone string
	messages                        []delivery.Message
}

// stale reports whether p is not the prior user the notices were
// rendered for.
func (n contactNotices) stale(p prior) bool {
	if p.had() != n.had || !p.deletedAt.Equal(n.deletedAt) {
		return true
	}
	return n.had && (p.u.Username != n.forUsername || p.u.Email != n.forEmail || p.u.Phone != n.forPhone)
}

// renderContactNotices renders the notices a write of in over p sends: a
// replaced contact's old value hears of it (a first set is no change).
func (s *Service) renderContactNotices(st Settings, p prior, in UserInput) (contactNotices, error) {
	if !p.had() {
		return contactNotices{}, nil
	}
	old := p.u
	n := contactNotices{had: true, deletedAt: p.deletedAt, forUsername: old.Username, forEmail: old.Email, forPhone: old.Phone}
	if old.Email != "" && !sameContact(old.Email, in.Email) {
		m, err := s.render(st, old.Locale, delivery.KindContactChanged, delivery.ChannelEmail, old.Email, delivery.TemplateData{UserName: old.Username, Changed: delivery.ChangedEmail})
		if err != nil {
			return n, err
		}
		n.messages = append(n.messages, m)
	}
	if old.Phone != "" && old.Phone != in.Phone && !s.noSMS {
		m, err := s.render(st, old.Locale, delivery.KindContactChanged, delivery.ChannelSMS, old.Phone, delivery.TemplateData{Changed: delivery.ChangedPhone})
		if err != nil {
			return n, err
		}
		n.messages = append(n.messages, m)
	}
	return n, nil
}

// sameSettings reports whether an institution's stored settings are the
// ones a flow rendered from.
func sameSettings(a, b store.Institution) bool { return bytes.Equal(a.Settings, b.Settings) }
