package reset_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/reset"
)

var (
	jane = reset.UserInput{Username: "jane.doe", Email: "jane@example.com", Phone: "+14155550123", Password: ptr("an old passphrase 1")}
	sam  = reset.UserInput{Username: "sam", Email: "sam@example.com", Status: reset.StatusDisabled}
	ann  = reset.UserInput{Username: "ann", Email: "ann@example.com"}
)

func TestLinkFlow(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		user   reset.UserInput
		patch  reset.SettingsPatch
		method string
		sends  int           // links sent before one is redeemed
		wait   time.Duration // between the last send and the change
		redeem int           // which link is redeemed (0: the first)
		// sendErr is what the last send returns; changeErr what the change does.
		sendErr, changeErr error
	}{
		{name: "email link redeemed once", user: jane, method: "email", sends: 1},
		{name: "sms link redeemed once", user: jane, method: "sms", sends: 1},
		{name: "a newer link kills the older", user: jane, method: "email", sends: 2, redeem: 0, changeErr: reset.ErrGone},
		{name: "the newer link works", user: jane, method: "email", sends: 2, redeem: 1},
		{name: "expired", user: jane, patch: reset.SettingsPatch{Expiration: ptr(300)}, method: "email", sends: 1, wait: 301 * time.Second, changeErr: reset.ErrGone},
		{name: "just before expiry", user: jane, patch: reset.SettingsPatch{Expiration: ptr(300)}, method: "email", sends: 1, wait: 299 * time.Second},
		{name: "disabled user", user: sam, method: "email", sends: 1, sendErr: reset.ErrUserDisabled},
		{name: "no phone", user: ann, method: "sms", sends: 1, sendErr: reset.ErrNoContact},
		{name: "bad method", user: ann, method: "pigeon", sends: 1, sendErr: &reset.InvalidError{Field: "method"}},
		{name: "6th send in an hour", user: ann, method: "email", sends: 6, sendErr: &reset.LimitError{}},
		{name: "the cap off", user: ann, patch: reset.SettingsPatch{SendsPerUserHour: ptr(0)}, method: "email", sends: 6, redeem: 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.putUser(t, "u", c.user)
			b.settings(t, c.patch)
			for i := range c.sends {
				ap, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", c.method)
				if want := error(nil); i == c.sends-1 {
					want = c.sendErr
					if !is(err, want) {
						t.Fatalf("send %d: %v, want %v", i, err, want)
					}
				} else if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				if ap.ID != "" {
					t.Fatalf("an approval without adminResetApproval: %+v", ap)
				}
			}
			msgs := b.outbox(t)
			sent := c.sends
			if c.sendErr != nil {
				sent--
			}
			if len(msgs) != sent {
				t.Fatalf("outbox %v, want %d links", kinds(msgs), sent)
			}
			if c.sendErr != nil {
				n := 0
				for _, a := range b.actions(t) {
					if strings.HasPrefix(a, "reset.send.") {
						n++
					}
				}
				if n != sent {
					t.Errorf("audit %v after %d sends", b.actions(t), sent)
				}
				return
			}
			var tokens []string
			for _, m := range msgs {
				to := c.user.Email
				if c.method == "sms" {
					to = c.user.Phone
				}
				if m.Kind != delivery.KindResetLink || m.Channel != c.method || m.To != to {
					t.Fatalf("message %s/%s to %s, want a reset link by %s to %s", m.Kind, m.Channel, m.To, c.method, to)
				}
				if !strings.Contains(m.Text, publicURL+"/reset?token=") {
					t.Errorf("link not on the public URL: %q", m.Text)
				}
				tokens = append(tokens, find(t, linkToken, m))
			}
			if c.method == "email" && msgs[0].From != "security@acme.example" {
				t.Errorf("from %q", msgs[0].From)
			}
			for i, tok := range tokens {
				if want := i == len(tokens)-1; b.live(t, tok) != want {
					t.Errorf("link %d live in the store: %v, want %v", i, !want, want)
				}
			}
			tok := tokens[c.redeem]
			b.clock.Advance(c.wait)
			if c.changeErr == nil {
				if info, err := b.svc.InspectToken(b.ctx, tok); err != nil || info.UserID != "u" || info.InstitutionID != "acme" || info.DisplayName != "Acme Bank" {
					t.Fatalf("inspect: %+v, %v", info, err)
				}
			}
			before := b.user(t, "u").PasswordHash
			if err := b.svc.ChangePassword(b.ctx, maker, tok, goodPassword); !is(err, c.changeErr) {
				t.Fatalf("change: %v, want %v", err, c.changeErr)
			}
			after := b.user(t, "u")
			if c.changeErr != nil {
				if after.PasswordHash != before {
					t.Error("a refused change changed the password")
				}
				return
			}
			if after.PasswordHash == before || strings.Contains(after.PasswordHash, goodPassword) {
				t.Errorf("stored hash %q after the change", after.PasswordHash)
			}
			if b.live(t, tok) {
				t.Error("a redeemed token is still live in the store")
			}
			if err := b.svc.ChangePassword(b.ctx, maker, tok, goodPassword+"!"); !is(err, reset.ErrGone) {
				t.Errorf("a second change with one token: %v", err)
			}
			if err := b.svc.VerifyPassword(b.ctx, maker, "acme", "u", goodPassword); err != nil {
				t.Errorf("verify the new password: %v", err)
			}
			notices := b.outbox(t)[len(msgs):]
			if len(notices) == 0 || notices[0].Kind != delivery.KindPasswordChanged || strings.Contains(notices[0].Text, tok) {
				t.Errorf("change notices %v", kinds(notices))
			}
			got := b.actions(t)
			send, change := slices.Index(got, "reset.send."+c.method+"/ok"), slices.Index(got, "password.change/ok")
			if send < 0 || change < send || !slices.Contains(got, "password.verify/match") {
				t.Errorf("audit %v", got)
			}
		})
	}
}

// The policy refuses a weak password and leaves the token usable.
func TestChangePolicy(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putUser(t, "u", jane)
	if _, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", "email"); err != nil {
		t.Fatal(err)
	}
	tok := find(t, linkToken, b.outbox(t)[0])
	for _, c := range []struct {
		name, pw string
		want     error
	}{
		{"too short", "short", &reset.PolicyError{}},
		{"common", "1qaz2wsx3edc", &reset.PolicyError{}},
		{"contains the username", "my name is jane.doe!", &reset.PolicyError{}},
		{"reused", "an old passphrase 1", &reset.PolicyError{}},
		{"good", goodPassword, nil},
		{"spent", goodPassword + "!", reset.ErrGone},
	} {
		t.Run(c.name, func(t *testing.T) { // in order: the last two spend the token
			if err := b.svc.ChangePassword(b.ctx, maker, tok, c.pw); !is(err, c.want) {
				t.Fatalf("change to %q: %v, want %v", c.pw, err, c.want)
			}
		})
	}
}

func TestDeletingAUserKillsTheLink(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putUser(t, "u", ann)
	if _, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", "email"); err != nil {
		t.Fatal(err)
	}
	tok := find(t, linkToken, b.outbox(t)[0])
	if err := b.svc.DeleteUser(b.ctx, maker, "acme", "u"); err != nil {
		t.Fatal(err)
	}
	if b.live(t, tok) {
		t.Error("the deleted user's token is live in the store")
	}
	if err := b.svc.ChangePassword(b.ctx, maker, tok, goodPassword); !is(err, reset.ErrGone) {
		t.Errorf("token of a deleted user: %v", err)
	}
	if _, err := b.svc.SendResetLink(b.ctx, maker, "acme", "u", "email"); !is(err, reset.ErrNotFound) {
		t.Errorf("send to a deleted user: %v", err)
	}
}
