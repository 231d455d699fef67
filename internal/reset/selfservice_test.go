package reset_test

import (
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/reset"
)

// A known and an unknown username get the same answer; only a known,
// active user with an email gets a message in the outbox.
func TestSelfServiceKnownAndUnknownAnswerAlike(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name     string
		username string
		sends    bool
	}{
		{"known", "jane.doe", true},
		{"known, any case", "JANE.DOE", true},
		{"unknown", "nobody", false},
		{"disabled", "sam", false},
		{"no email", "pat", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.putUser(t, "u", jane)
			b.putUser(t, "s", sam)
			b.putUser(t, "p", reset.UserInput{Username: "pat", Phone: "+14155550199"})
			in := reset.SelfServiceInput{Username: c.username, LinkReset: "security@acme.example", SiteName: publicURL + "/reset"}
			got, err := b.svc.SendResetPassword(b.ctx, reset.Actor{IP: "192.0.2.7"}, in)
			if err != nil {
				t.Fatal(err)
			}
			in.Username = "someone else entirely"
			ref, err := b.svc.SendResetPassword(b.ctx, reset.Actor{IP: "192.0.2.7"}, in)
			if err != nil {
				t.Fatal(err)
			}
			if got != ref {
				t.Errorf("answer %+v differs from an unknown user's %+v", got, ref)
			}
			if got.To != "***" || got.From != "security@acme.example" || !strings.Contains(got.Body, "{generatedToken}") || strings.Contains(got.Body, "jane") {
				t.Errorf("masked answer %+v", got)
			}
			msgs := b.outbox(t)
			if !c.sends {
				if len(msgs) != 0 {
					t.Fatalf("outbox %v for a user who gets nothing", kinds(msgs))
				}
				return
			}
			if len(msgs) != 1 || msgs[0].Kind != delivery.KindResetLink || msgs[0].To != jane.Email {
				t.Fatalf("outbox %v", kinds(msgs))
			}
			tok := find(t, linkToken, msgs[0])
			if !b.live(t, tok) {
				t.Fatal("the self-service token is not live in the store")
			}
			if err := b.svc.ChangePassword(b.ctx, maker, tok, goodPassword); err != nil {
				t.Errorf("change with the self-service token: %v", err)
			}
		})
	}
}

func TestSelfServiceRefusals(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.putUser(t, "u", jane)
	for _, c := range []struct {
		name string
		in   reset.SelfServiceInput
		want error
	}{
		{"foreign siteName", reset.SelfServiceInput{Username: "jane.doe", SiteName: "https://evil.example/reset"}, &reset.InvalidError{Field: "siteName"}},
		{"foreign sender", reset.SelfServiceInput{Username: "jane.doe", LinkReset: "ceo@evil.example"}, &reset.InvalidError{Field: "linkReset"}},
		{"no username", reset.SelfServiceInput{}, &reset.InvalidError{Field: "username"}},
		{"unknown institution", reset.SelfServiceInput{Username: "jane.doe", InstitutionID: "nope"}, reset.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, err := b.svc.SendResetPassword(b.ctx, reset.Actor{}, c.in); !is(err, c.want) {
				t.Errorf("%v, want %v", err, c.want)
			}
		})
	}
	if msgs := b.outbox(t); len(msgs) != 0 {
		t.Errorf("refused requests queued %v", kinds(msgs))
	}
}
