package reset_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
)

// racing is the real store with another writer slipping in just before
// each of the domain's write transactions: between the read a flow
// renders from and its write.
type racing struct {
	*sqlite.Store
	before func(n int) // n counts the domain's writes, from 1
	n      int
}

func (r *racing) Update(ctx context.Context, fn func(store.Tx) error) error {
	r.n++
	r.before(r.n)
	return r.Store.Update(ctx, fn)
}

// racingService is the bundle's service over a racing store.
func (b *bundle) racingService(before func(n int)) *reset.Service {
	return reset.New(reset.Config{
		Store: &racing{Store: b.st, before: before}, Hasher: password.NewHasher(cheapArgon2, 0, 0), Key: b.key,
		Templates: delivery.DefaultTemplates(), PublicURL: publicURL, DefaultFrom: "noreply@resetd.example", Now: b.clock.Now,
	})
}

// Messages are rendered before the write transaction (prepare.go); a
// change between the two must never send a message rendered for what was
// there before: the flow renders again for what the write sees.
func TestRenderedMessagesFollowAConcurrentChange(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// send starts the flow under test; it returns the error.
		send func(b *bundle, svc *reset.Service) error
	}{
		{"admin link", func(b *bundle, svc *reset.Service) error {
			_, err := svc.SendResetLink(b.ctx, maker, "acme", "u", delivery.ChannelEmail)
			return err
		}},
		{"otp", func(b *bundle, svc *reset.Service) error {
			cms, err := svc.ContactMethods(b.ctx, "acme", "u")
			if err != nil {
				return err
			}
			for _, cm := range cms {
				if cm.Type == delivery.ChannelEmail {
					_, _, err = svc.SendOTP(b.ctx, maker, "acme", "u", cm.ID)
					return err
				}
			}
			return errors.New("no email contact method")
		}},
		{"self-service", func(b *bundle, svc *reset.Service) error {
			_, err := svc.SendResetPassword(b.ctx, maker, reset.SelfServiceInput{InstitutionID: "acme", Username: "jane"})
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.putUser(t, "u", reset.UserInput{Username: "jane", Email: "old@bank.example"})
			// The display name is in every message: renaming the
			// institution between render and write changes what the
			// customer must read.
			svc := b.racingService(func(n int) {
				if n == 1 {
					if _, err := b.svc.UpdateSettings(b.ctx, maker, "acme", reset.SettingsPatch{DisplayName: ptr("Acme Renamed")}); err != nil {
						t.Errorf("rename: %v", err)
					}
				}
			})
			if err := c.send(b, svc); err != nil {
				t.Fatal(err)
			}
			msgs := b.outbox(t)
			last := msgs[len(msgs)-1]
			if !strings.Contains(last.Text, "Acme Renamed") {
				t.Errorf("the message was rendered for the settings before the change: %q", last.Text)
			}
		})
	}

	t.Run("a user whose address keeps changing gets a conflict, and nothing is sent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.settings(t, reset.SettingsPatch{ContactChangeCooldown: ptr(0)}) // the send is refused by nothing else
		b.putUser(t, "u", reset.UserInput{Username: "jane", Email: "old@bank.example"})
		queued := len(b.outbox(t))
		svc := b.racingService(func(n int) {
			email := "moved" + strings.Repeat("x", n) + "@bank.example"
			if _, err := b.svc.PutUser(b.ctx, maker, "acme", "u", reset.UserInput{Username: "jane", Email: email}); err != nil {
				t.Errorf("move: %v", err)
			}
		})
		_, err := svc.SendResetLink(b.ctx, maker, "acme", "u", delivery.ChannelEmail)
		if !errors.Is(err, reset.ErrConflict) {
			t.Fatalf("err = %v, want a conflict", err)
		}
		for _, m := range b.outbox(t)[queued:] {
			if m.Kind == delivery.KindResetLink {
				t.Errorf("a reset link went out to %s", m.To)
			}
		}
	})
}
