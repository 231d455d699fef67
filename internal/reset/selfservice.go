package reset

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// SelfServiceInput is seed 002's SendResetPassword request.
type SelfServiceInput struct {
	Username      string
	LinkReset     string
	SiteName      string
	InstitutionID string
	// Method is the HTTP method asked with ("GET" or "POST"): an
	// institution may refuse GET (selfServiceGet false).
	Method string
}

// ErrMethodNotAllowed refuses a self-service GET where the institution
// turned selfServiceGet off (405, Allow: POST).
var ErrMethodNotAllowed = errors.New("reset: self-service answers POST only here")

// SelfServiceEmail is seed 002's answer: the email as sent, with the token
// and the user name masked.
type SelfServiceEmail struct {
	From    string `json:"from"`
	To      string `json:"to"`
	Subject string `json:"subject"`
	Body    string `json:"body"`
}

// Placeholders seed 002 shows in place of secrets.
const (
	placeholderToken = "{generatedToken}"
	placeholderUser  = "{userName}"
)

// SendResetPassword is the self-service "forgot password" request. A
// known and an unknown username get the same status, the same body shape
// and about the same latency: both render the masked email and commit one
// write transaction; only a known, active user with an email gets a token
// and a queued message. Issuing and queuing still cost more, so every answer is
// held until a floor above what sending typically takes.
func (s *Service) SendResetPassword(ctx context.Context, a Actor, in SelfServiceInput) (SelfServiceEmail, error) {
	if in.InstitutionID != "" && !ValidID(in.InstitutionID) {
		return SelfServiceEmail{}, invalid("institutionId", "malformed institution id")
	}
	if !validUsername(in.Username) {
		return SelfServiceEmail{}, invalid("username", "username is required")
	}
	start := time.Now() // real time, not s.Now: the padding below is about latency
	tok, hash := newToken()
	var out SelfServiceEmail
	sent := false
	for try := 0; ; try++ {
		// Read and render first (see prepare.go), then write.
		var snap snapshot
		var st Settings
		var u store.User
		var known bool
		err := s.store.View(ctx, func(tx store.ReadTx) error {
			in, sett, u2, ok, err := s.selfServiceSubject(ctx, tx, in)
			st, u, known, snap = sett, u2, ok, snapshotOf(in, u2, ok)
			return err
		})
		if err != nil {
			return SelfServiceEmail{}, err
		}
		if in.Method == "GET" && !st.SelfServiceGet {
			return SelfServiceEmail{}, ErrMethodNotAllowed
		}
		base, from, err := s.selfServiceTargets(st, in)
		if err != nil {
			return SelfServiceEmail{}, err
		}
		lifetime := time.Duration(st.Expiration) * time.Second
		// The masked copy for the answer: rendered with sentinels that
		// survive escaping, then replaced by the literal placeholders.
		sentinelTok, sentinelUser := sentinel(), sentinel()
		// It is in the institution's default language whoever asks: a
		// user's own would tell a known username from an unknown one.
		masked, err := s.render(st, "", delivery.KindResetLink, delivery.ChannelEmail, "", delivery.TemplateData{
			UserName: sentinelUser, Link: base + "?token=" + sentinelTok, ExpiresIn: lifetime,
		})
		if err != nil {
			return SelfServiceEmail{}, err
		}
		out = SelfServiceEmail{
			From:    from,
			To:      "***",
			Subject: masked.Subject,
			Body:    strings.NewReplacer(sentinelTok, placeholderToken, sentinelUser, placeholderUser).Replace(masked.HTML),
		}
		var m delivery.Message
		dsp := s.newDispute()
		if known && u.Email != "" {
			m, err = s.render(st, u.Locale, delivery.KindResetLink, delivery.ChannelEmail, u.Email, delivery.TemplateData{
				UserName: u.Username, Link: base + "?token=" + tok, ExpiresIn: lifetime, DisputeLink: dsp.link,
			})
			if err != nil {
				return SelfServiceEmail{}, err
			}
			m.From = from
		}
		err = s.store.Update(ctx, func(tx store.Tx) error {
			now := s.now()
			inst, st, u, known, err := s.selfServiceSubject(ctx, tx, in)
			if err != nil {
				return err
			}
			// Per-IP limits count before the user is looked at; an
			// institution resetd does not know answers as a known one, its
			// requests counted per IP (and per name asked) alike.
			instID := inst.ID
			ipK, perIP := ipKey(instID, a.IP), st.PublicPerIPMinute
			if instID == "" {
				instID = in.InstitutionID
				ipK, perIP = anonIPKey(a.IP), anonPerIPMinute
			}
			if err := s.limit(ctx, tx, now, "publicPerIPMinute", ipK, perIP, time.Minute); err != nil {
				return err
			}
			// Self-service has its own budget, per username asked: it never
			// spends the bank's per-user send budget (sendsPerUserHour).
			if err := s.limit(ctx, tx, now, "publicPerUsernameHour", selfServiceNameKey(instID, in.Username), st.PublicPerUsernameHour, time.Hour); err != nil {
				return err
			}
			if snapshotOf(inst, u, known) != snap {
				return errStale
			}
			send := known && u.Status == StatusActive && u.Email != "" && s.sendable(st, u, delivery.ChannelEmail, now) == nil
			out.To = "***"
			if send && st.RevealRecipient {
				out.To = MaskEmail(u.Email)
			}
			if !send {
				// Nothing goes out; the latency floor below keeps this answer
				// as slow as one that sent.
				return s.audit(ctx, tx, now, a, "reset.selfservice", inst.ID, "", "not_sent")
			}
			if err := s.emit(ctx, tx, now, st, inst.ID, u.ID, delivery.EventResetRequested, map[string]any{"flow": "self_service", "channel": delivery.ChannelEmail}); err != nil {
				return err
			}
			// A self-service send kills older self-service links only: an
			// anonymous caller can never kill the link support just sent.
			if err := tx.KillTokens(ctx, inst.ID, u.ID, now, PurposeSelfService); err != nil {
				return err
			}
			// The new link and its dispute token: one statement.
			if err := tx.InsertTokens(ctx, store.Token{Hash: hash, InstitutionID: inst.ID, UserID: u.ID, Purpose: PurposeSelfService, CreatedAt: now, ExpiresAt: now.Add(lifetime)}, dsp.token(u, now)); err != nil {
				return err
			}
			if err := s.queue(ctx, tx, now, st, inst.ID, u.ID, delivery.KindResetLink, m); err != nil {
				return err
			}
			sent = true
			return s.audit(ctx, tx, now, a, "reset.selfservice", inst.ID, u.ID, "ok")
		})
		if err = staleOrDone(err, try); err == errStale {
			continue
		}
		if err == nil && sent {
			s.observer.ResetIssued(delivery.ChannelEmail, "self_service")
		}
		if err == nil {
			s.selfServicePad.settle(ctx, start, sent)
		}
		return out, err
	}
}

// unknownInstitution is what a public endpoint answers an institution id
// resetd does not know with: the defaults, named by the id asked for, so
// that the answer does not tell which institutions exist (SPEC §10).
func (s *Service) unknownInstitution(id string) Settings {
	st := DefaultSettings(s.publicURL)
	st.DisplayName = id
	return st
}

// PublicSettings returns what a public page shows of an institution: its
// settings, or, for a well-formed id resetd does not know, the defaults
// under that id (the pages answer unknown institutions as known ones).
func (s *Service) PublicSettings(ctx context.Context, institutionID string) (Settings, error) {
	st, err := s.Settings(ctx, institutionID)
	if errors.Is(err, ErrNotFound) {
		return s.unknownInstitution(institutionID), nil
	}
	return st, err
}

// selfServiceSubject reads the institution a self-service request names
// (or the default one) and the user its username names, if any.
func (s *Service) selfServiceSubject(ctx context.Context, tx store.ReadTx, in SelfServiceInput) (store.Institution, Settings, store.User, bool, error) {
	var inst store.Institution
	var err error
	if in.InstitutionID != "" {
		inst, err = tx.Institution(ctx, in.InstitutionID)
	} else {
		inst, err = tx.DefaultInstitution(ctx)
	}
	if errors.Is(err, store.ErrNotFound) {
		// Answered as an institution with default settings (no oracle).
		return store.Institution{}, s.unknownInstitution(in.InstitutionID), store.User{}, false, nil
	}
	if err != nil {
		return inst, Settings{}, store.User{}, false, err
	}
	st, err := s.decode(inst)
	if err != nil {
		return inst, st, store.User{}, false, err
	}
	u, err := tx.UserByUsername(ctx, inst.ID, in.Username)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return inst, st, store.User{}, false, nil
	case err != nil:
		return inst, st, u, false, err
	}
	return inst, st, u, true, nil
}

// latencyFloor holds every self-service answer until a floor: the median
// duration of the latest requests that sent, plus half of it, at most
// maxSelfServiceMargin (under load, when sends are slow, the noise hides
// the rest and a longer hold would only slow every answer down).
// Issuing a token and queuing its message cost more than the unknown
// path's rendering and audit write can balance; a request that sends
// nothing (unknown, disabled or capped user) would otherwise answer
// measurably sooner. Both kinds wait for the same floor, so both also meet
// the same timer granularity and scheduling delay when they wake (padding
// only the cheaper kind left it late by about that delay).
type latencyFloor struct {
	mu     sync.Mutex
	recent [31]time.Duration
	n      int // filled entries of recent
	next   int // where the next sample goes
}

// maxSelfServiceMargin bounds the margin above the median, and
// maxSelfServiceFloor the floor, whatever the samples say.
const (
	maxSelfServiceMargin = 5 * time.Millisecond
	maxSelfServiceFloor  = 2 * time.Second
)

func (f *latencyFloor) settle(ctx context.Context, start time.Time, sent bool) {
	took := time.Since(start)
	f.mu.Lock()
	if sent {
		f.recent[f.next] = took
		f.next = (f.next + 1) % len(f.recent)
		f.n = min(f.n+1, len(f.recent))
	}
	recent, n := f.recent, f.n // a copy, sorted outside the lock
	f.mu.Unlock()
	if n == 0 {
		return
	}
	slices.Sort(recent[:n])
	median := recent[n/2]
	wait := min(median+min(median/2, maxSelfServiceMargin), maxSelfServiceFloor) - took
	if wait <= 0 {
		return
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// selfServiceTargets resolves the link base and the sender from the
// request against the institution's allowlists: a caller can never point
// a link at its own host or send as an address the bank did not list.
func (s *Service) selfServiceTargets(st Settings, in SelfServiceInput) (base, from string, err error) {
	base, from = st.LinkBases[0], s.sender(st)
	onBases := func(u string) bool {
		return slices.ContainsFunc(st.LinkBases, func(b string) bool { return config.BaseURL(b) == config.BaseURL(u) })
	}
	if in.SiteName != "" {
		if !onBases(in.SiteName) {
			return "", "", invalid("siteName", "siteName is not one of the institution's link bases")
		}
		base = in.SiteName
	}
	if in.LinkReset != "" {
		switch {
		case strings.Contains(in.LinkReset, "://"):
			if !onBases(in.LinkReset) {
				return "", "", invalid("linkReset", "linkReset is not one of the institution's link bases")
			}
			if in.SiteName == "" {
				base = in.LinkReset
			}
		case slices.Contains(st.Senders, in.LinkReset):
			from = in.LinkReset
		default:
			return "", "", invalid("linkReset", "linkReset is not one of the institution's senders")
		}
	}
	return base, from, nil
}

func sentinel() string {
	return "x" + secret.Hex(12)
}
