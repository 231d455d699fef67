package reset_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/store"
)

// "This wasn't me" kills the user's link and OTP and locks new sends for
// disputeLock seconds.
func TestDispute(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		patch reset.SettingsPatch
		wait  time.Duration // after the dispute, before the next send
		want  error         // of the sends after the wait
	}{
		{name: "during the lock", wait: 24*time.Hour - time.Second, want: reset.ErrLocked},
		{name: "after the lock", wait: 24*time.Hour + time.Second},
		{name: "a shorter lock", patch: reset.SettingsPatch{DisputeLock: ptr(3600)}, wait: time.Hour + time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.putUser(t, "u", jane)
			b.settings(t, c.patch)
			if _, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", "email"); err != nil {
				t.Fatal(err)
			}
			m := b.outbox(t)[0]
			link, dispute := find(t, linkToken, m), find(t, disputeToken, m)
			if !strings.Contains(m.HTML, publicURL+"/reset/dispute?token=") {
				t.Errorf("the HTML lacks the dispute link")
			}
			cms, err := b.svc.ContactMethods(b.ctx, "acme", "u")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := b.svc.SendOTP(b.ctx, maker, "acme", "u", cms[0].ID); err != nil {
				t.Fatal(err)
			}
			code := find(t, otpCode, b.outbox(t)[1])
			if info, err := b.svc.InspectDispute(b.ctx, dispute); err != nil || info.DisplayName != "Acme Bank" {
				t.Fatalf("inspect: %+v, %v", info, err)
			}
			if !b.live(t, dispute) {
				t.Fatal("inspecting spent the dispute link")
			}
			if _, err := b.svc.ConfirmDispute(b.ctx, reset.Actor{IP: "192.0.2.3"}, dispute); err != nil {
				t.Fatalf("confirm: %v", err)
			}
			if _, err := b.svc.ConfirmDispute(b.ctx, reset.Actor{}, dispute); !is(err, reset.ErrGone) {
				t.Errorf("a used dispute link: %v", err)
			}
			lock := 86400
			if c.patch.DisputeLock != nil {
				lock = *c.patch.DisputeLock
			}
			if u := b.user(t, "u"); !u.LockedUntil.Equal(b.clock.Now().Add(time.Duration(lock) * time.Second)) {
				t.Errorf("stored lock until %v", u.LockedUntil)
			}
			if b.live(t, link) || b.live(t, dispute) {
				t.Error("a token outlived the dispute in the store")
			}
			if err := b.svc.ChangePassword(b.ctx, maker, link, goodPassword); !is(err, reset.ErrGone) {
				t.Errorf("the link after a dispute: %v", err)
			}
			if _, _, err := b.svc.VerifyOTP(b.ctx, reset.Actor{}, "acme", reset.OTPVerifyInput{Username: jane.Username, OTP: code}); !is(err, reset.ErrOTPInvalid) {
				t.Errorf("the OTP after a dispute: %v", err)
			}
			if got := b.actions(t); !slices.Contains(got, "reset.disputed/ok") {
				t.Errorf("audit %v", got)
			}
			queued := len(b.outbox(t))
			b.clock.Advance(c.wait)
			if _, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", "email"); !is(err, c.want) {
				t.Errorf("link send: %v, want %v", err, c.want)
			}
			if _, _, err := b.svc.SendOTP(b.ctx, maker, "acme", "u", cms[0].ID); !is(err, c.want) {
				t.Errorf("OTP send: %v, want %v", err, c.want)
			}
			if _, err := b.svc.SendResetPassword(b.ctx, reset.Actor{IP: "192.0.2.4"}, reset.SelfServiceInput{Username: jane.Username}); err != nil {
				t.Errorf("self-service answers as always: %v", err)
			}
			sent := len(b.outbox(t)) - queued
			if c.want != nil && sent != 0 {
				t.Errorf("%d messages queued during the lock", sent)
			}
			if c.want == nil && sent != 3 {
				t.Errorf("%d messages queued after the lock, want 3", sent)
			}
		})
	}
}

// An admin reset with adminResetApproval waits for a second client.
func TestApproval(t *testing.T) {
	t.Parallel()
	checker := reset.Actor{ClientID: "checker"}
	for _, c := range []struct {
		name     string
		inst, id string // "" is the pending approval of acme
		approver reset.Actor
		wait     time.Duration
		want     error
	}{
		{name: "another client approves", approver: checker},
		{name: "self-approval", approver: maker, want: reset.ErrSelfApproval},
		{name: "just before it expires", approver: checker, wait: 59 * time.Minute},
		{name: "expired", approver: checker, wait: 61 * time.Minute, want: reset.ErrNotFound},
		{name: "unknown approval", id: "ap_unknown", approver: checker, want: reset.ErrNotFound},
		{name: "another institution", inst: "other", approver: checker, want: reset.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.putUser(t, "u", jane)
			b.settings(t, reset.SettingsPatch{AdminResetApproval: ptr(true)})
			ap, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", "email")
			if err != nil || ap.ID == "" || !ap.ExpiresAt.Equal(b.clock.Now().Add(time.Hour)) {
				t.Fatalf("request: %+v, %v", ap, err)
			}
			if msgs := b.outbox(t); len(msgs) != 0 {
				t.Fatalf("outbox %v before approval", kinds(msgs))
			}
			var row store.Approval
			b.write(t, func(tx store.Tx) (err error) {
				row, err = tx.LockApproval(b.ctx, "acme", ap.ID)
				return err
			})
			if row.UserID != "u" || row.Method != "email" || row.RequestedBy != maker.ClientID || !row.ApprovedAt.IsZero() {
				t.Fatalf("stored approval %+v", row)
			}
			inst, id := cmpOr(c.inst, "acme"), cmpOr(c.id, ap.ID)
			b.clock.Advance(c.wait)
			if err := b.svc.Approve(b.ctx, c.approver, inst, id); !is(err, c.want) {
				t.Fatalf("approve: %v, want %v", err, c.want)
			}
			msgs := b.outbox(t)
			if c.want != nil {
				if len(msgs) != 0 {
					t.Errorf("outbox %v after a refused approval", kinds(msgs))
				}
				return
			}
			if len(msgs) != 1 || !b.live(t, find(t, linkToken, msgs[0])) {
				t.Fatalf("outbox %v after the approval", kinds(msgs))
			}
			if err := b.svc.Approve(b.ctx, checker, "acme", ap.ID); !is(err, reset.ErrAlreadyApproved) {
				t.Errorf("approve twice: %v", err)
			}
			if got := b.actions(t); !slices.Contains(got, "reset.request_approval/pending") || !slices.Contains(got, "reset.approve/ok") {
				t.Errorf("audit %v", got)
			}
		})
	}
}

func cmpOr(s, or string) string {
	if s == "" {
		return or
	}
	return s
}

// Knowledge facts are stored as keyed hashes; with requireFacts, a right
// code without the right facts is refused like a wrong code, and a link
// meets the facts at change.
func TestFacts(t *testing.T) {
	t.Parallel()
	facts := map[string]string{reset.FactDateOfBirth: "1984-02-29", reset.FactPostalCode: "SW1A 1AA", reset.FactAccountLast4: "9876"}
	for _, c := range []struct {
		name  string
		given map[string]string
		want  error
	}{
		{"none", nil, reset.ErrOTPInvalid},
		{"one of two", map[string]string{reset.FactDateOfBirth: "1984-02-29"}, reset.ErrOTPInvalid},
		{"a wrong one", map[string]string{reset.FactDateOfBirth: "1984-02-28", reset.FactPostalCode: "sw1a1aa"}, reset.ErrOTPInvalid},
		{"right, normalised", map[string]string{reset.FactDateOfBirth: "1984-02-29", reset.FactPostalCode: " sw1a 1aa "}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			in := ann
			in.Facts = facts
			b.putUser(t, "u", in)
			b.settings(t, reset.SettingsPatch{RequireFacts: ptr([]string{reset.FactDateOfBirth, reset.FactPostalCode})})
			u := b.user(t, "u")
			for name, v := range u.Facts {
				if len(v) < 32 || strings.Contains(strings.ToLower(v), strings.ToLower(strings.ReplaceAll(facts[name], " ", ""))) {
					t.Errorf("fact %s stored as %q", name, v)
				}
			}
			if len(u.Facts) != 3 {
				t.Errorf("stored facts %v", u.Facts)
			}
			cms, err := b.svc.ContactMethods(b.ctx, "acme", "u")
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := b.svc.SendOTP(b.ctx, maker, "acme", "u", cms[0].ID); err != nil {
				t.Fatal(err)
			}
			code := find(t, otpCode, b.outbox(t)[0])
			tok, _, err := b.svc.VerifyOTP(b.ctx, reset.Actor{}, "acme", reset.OTPVerifyInput{Username: ann.Username, OTP: code, Facts: c.given})
			if !is(err, c.want) {
				t.Fatalf("OTP with facts %v: %v, want %v", c.given, err, c.want)
			}
			if err == nil {
				// A token won with facts needs none at change.
				if err := b.svc.ChangePassword(b.ctx, maker, tok, goodPassword); err != nil {
					t.Errorf("change with the OTP's token: %v", err)
				}
			}
			// A link token meets the same facts at change.
			if _, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", "email"); err != nil {
				t.Fatal(err)
			}
			msgs := b.outbox(t)
			link := find(t, linkToken, msgs[len(msgs)-1])
			if err := b.svc.ChangePasswordWithFacts(b.ctx, maker, link, goodPassword+" 2", c.given); !is(err, c.want) {
				t.Errorf("link change with facts %v: %v, want %v", c.given, err, c.want)
			}
			if b.live(t, link) != (c.want != nil) {
				t.Errorf("link live in the store: %v after %v", !(c.want != nil), c.want)
			}
		})
	}
	t.Run("refused facts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, f := range []map[string]string{{"shoeSize": "44"}, {reset.FactDateOfBirth: "yesterday"}} {
			in := ann
			in.Facts = f
			if _, err := b.svc.PutUser(b.ctx, maker, "acme", "u", in); !is(err, &reset.InvalidError{Field: "facts"}) {
				t.Errorf("facts %v: %v", f, err)
			}
		}
	})
}

// Replacing an email or phone starts a cooldown on that channel: the old
// address is told, the new one waits.
func TestContactChangeCooldown(t *testing.T) {
	t.Parallel()
	base := reset.UserInput{Username: jane.Username, Email: jane.Email, Phone: jane.Phone} // re-saved without a password
	changed := base
	changed.Email = "NEW@example.com"
	for _, c := range []struct {
		name   string
		then   reset.UserInput // the second save
		patch  reset.SettingsPatch
		wait   time.Duration
		method string
		want   error
	}{
		{name: "a changed email waits", then: changed, method: "email", want: reset.ErrContactCooldown},
		{name: "23 h into 24", then: changed, wait: 23 * time.Hour, method: "email", want: reset.ErrContactCooldown},
		{name: "after the cooldown", then: changed, wait: 24 * time.Hour, method: "email"},
		{name: "a shortened cooldown", then: changed, patch: reset.SettingsPatch{ContactChangeCooldown: ptr(3600)}, wait: time.Hour, method: "email"},
		{name: "the unchanged channel", then: changed, method: "sms"},
		{name: "the same address in another case", then: func() reset.UserInput { u := base; u.Email = "JANE@example.com"; return u }(), method: "email"},
		{name: "a first set is no change", then: func() reset.UserInput { u := ann; u.Phone = "+14155550123"; return u }(), method: "sms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			first := base
			if c.name == "a first set is no change" {
				first = ann
			}
			b.putUser(t, "u", first)
			b.putUser(t, "u", c.then)
			b.settings(t, c.patch)
			msgs := b.outbox(t)
			u := b.user(t, "u")
			if !strings.EqualFold(c.then.Email, first.Email) {
				if len(msgs) != 1 || msgs[0].To != first.Email || !u.EmailChangedAt.Equal(b.clock.Now()) {
					t.Fatalf("after an email change: outbox %v, stored change at %v", kinds(msgs), u.EmailChangedAt)
				}
			} else if len(msgs) != 0 || !u.EmailChangedAt.IsZero() || !u.PhoneChangedAt.IsZero() {
				t.Fatalf("no change: outbox %v, stored changes at %v / %v", kinds(msgs), u.EmailChangedAt, u.PhoneChangedAt)
			}
			b.clock.Advance(c.wait)
			if _, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", c.method); !is(err, c.want) {
				t.Errorf("link by %s: %v, want %v", c.method, err, c.want)
			}
			cms, err := b.svc.ContactMethods(b.ctx, "acme", "u")
			if err != nil {
				t.Fatal(err)
			}
			for _, cm := range cms {
				if cm.Type == c.method {
					if _, _, err := b.svc.SendOTP(b.ctx, maker, "acme", "u", cm.ID); !is(err, c.want) {
						t.Errorf("OTP by %s: %v, want %v", c.method, err, c.want)
					}
				}
			}
			if c.want != nil && len(b.outbox(t)) != len(msgs) {
				t.Errorf("outbox %v: a refused send queued a message", kinds(b.outbox(t)))
			}
		})
	}
}
