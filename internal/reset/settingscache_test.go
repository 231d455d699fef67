package reset_test

import (
	"testing"

	"github.com/resetd/resetd/internal/reset"
)

// Decoded settings are cached, but each caller gets its own copy, and a
// stored change is what the next read sees.
func TestSettingsReadsAreCopiesAndFollowUpdates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	first, err := b.svc.Settings(b.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := first.Senders[0]
	first.Senders[0] = "attacker@evil.example"
	first.LinkBases[0] = "https://evil.example/reset"
	first.Templates["resetLink.email.subject"] = "pwned"
	again, err := b.svc.Settings(b.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if again.Senders[0] != want || again.LinkBases[0] == "https://evil.example/reset" || again.Templates["resetLink.email.subject"] == "pwned" {
		t.Fatalf("a caller's change to its settings reached the next read: %+v", again)
	}
	seven := 7
	if _, err := b.svc.UpdateSettings(b.ctx, maker, "acme", reset.SettingsPatch{SendsPerUserHour: &seven}); err != nil {
		t.Fatal(err)
	}
	after, err := b.svc.Settings(b.ctx, "acme")
	if err != nil || after.SendsPerUserHour != 7 {
		t.Fatalf("after update: sendsPerUserHour %d, %v", after.SendsPerUserHour, err)
	}
}
