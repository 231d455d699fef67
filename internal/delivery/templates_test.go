package delivery_test

import (
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
)

// A realistic reset link, shaped like internal/reset's: the public URL,
// /reset, and a 32-byte token in base64url (43 characters).
const realisticLink = "https://reset.demobank.example/reset?token=3q2-7wWgL8tNf6kQpZr1aYxVbC0dE9uHjIkLmNoPqRs"

func sampleData() delivery.TemplateData {
	return delivery.TemplateData{
		DisplayName: "Demo Bank",
		UserName:    "jane.q.customer",
		Link:        realisticLink,
		Code:        "482913",
		ExpiresIn:   60 * time.Minute,
		DisputeLink: "https://reset.demobank.example/reset/dispute?token=9xY8wV7uT6sR5qP4oN3mL2kJ1iH0gFeDcBa-_Zz12345",
		When:        time.Date(2026, 12, 1, 23, 40, 0, 0, time.UTC),
		How:         delivery.HowAdmin,
	}
}

func allKinds() []string {
	return []string{delivery.KindResetLink, delivery.KindOTP, delivery.KindPasswordChanged}
}

func TestDefaultTemplatesRenderEverything(t *testing.T) {
	t.Parallel()
	tmpl := delivery.DefaultTemplates()
	if tmpl != delivery.DefaultTemplates() {
		t.Error("DefaultTemplates parsed twice")
	}
	for _, kind := range allKinds() {
		for _, channel := range []string{delivery.ChannelEmail, delivery.ChannelSMS} {
			for _, withOptional := range []bool{true, false} {
				d := sampleData()
				if !withOptional {
					d.UserName, d.DisputeLink, d.ExpiresIn = "", "", 0
				}
				t.Run(kind+"/"+channel, func(t *testing.T) {
					t.Parallel()
					r, err := tmpl.Render(kind, channel, d)
					if err != nil {
						t.Fatalf("Render: %v", err)
					}
					if r.Text == "" {
						t.Error("empty text")
					}
					if channel == delivery.ChannelEmail {
						if r.Subject == "" || r.HTML == "" {
							t.Errorf("email without subject or HTML: %+v", r)
						}
						if !strings.Contains(r.Subject, d.DisplayName) || !strings.Contains(r.Text, d.DisplayName) || !strings.Contains(r.HTML, d.DisplayName) {
							t.Errorf("email does not name the institution: %+v", r)
						}
					} else if r.Subject != "" || r.HTML != "" {
						t.Errorf("SMS with subject or HTML: %+v", r)
					}
					parts := []string{r.Text}
					if channel == delivery.ChannelEmail {
						parts = append(parts, r.HTML)
					}
					for _, p := range parts {
						switch kind {
						case delivery.KindResetLink:
							mustContain(t, p, d.Link)
						case delivery.KindOTP:
							mustContain(t, p, d.Code)
						}
						if d.ExpiresIn != 0 && kind != delivery.KindPasswordChanged {
							mustContain(t, p, "60 minutes")
						}
						// Two links do not fit in one SMS, so the reset SMS
						// leaves the dispute link out.
						if d.DisputeLink != "" && (channel == delivery.ChannelEmail || kind != delivery.KindResetLink) {
							mustContain(t, p, d.DisputeLink)
						}
						if strings.Contains(p, "<no value>") {
							t.Errorf("rendered %q contains <no value>", p)
						}
					}
				})
			}
		}
	}
}

func TestResetLinkEmailFollowsSeedWording(t *testing.T) {
	t.Parallel()
	d := sampleData()
	r, err := delivery.DefaultTemplates().Render(delivery.KindResetLink, delivery.ChannelEmail, d)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	for _, want := range []string{
		"Hello,",
		`<a title="Reset password" href="` + realisticLink + `">Reset password</a>`,
		"Your username is: jane.q.customer.",
		"If you didn&#39;t request a password reset",
		"Thanks,<br>Demo Bank",
	} {
		mustContain(t, r.HTML, want)
	}
	for _, want := range []string{
		"Hello,",
		realisticLink,
		"Your username is: jane.q.customer.",
		"If you didn't request a password reset",
		"expires in 60 minutes",
		"Thanks,\nDemo Bank",
	} {
		mustContain(t, r.Text, want)
	}
	if r.Subject != "Reset your Demo Bank password" {
		t.Errorf("subject = %q", r.Subject)
	}
}

func TestPasswordChangedEmailSaysWhatToDo(t *testing.T) {
	t.Parallel()
	r, err := delivery.DefaultTemplates().Render(delivery.KindPasswordChanged, delivery.ChannelEmail, sampleData())
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	for _, p := range []string{r.Text, r.HTML} {
		mustContain(t, p, "was just changed")
		mustContain(t, p, "contact Demo Bank right away")
	}
}

func TestTemplatesEscapeHostileData(t *testing.T) {
	t.Parallel()
	d := sampleData()
	d.DisplayName = `<script>alert("pwned")</script>` + "\r\nBcc: attacker@evil.example"
	d.UserName = `<img src=x onerror=alert(1)>`
	for _, kind := range allKinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			r, err := delivery.DefaultTemplates().Render(kind, delivery.ChannelEmail, d)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			for _, bad := range []string{"<script>", "<img"} {
				if strings.Contains(r.HTML, bad) {
					t.Errorf("HTML contains unescaped %q", bad)
				}
			}
			mustContain(t, r.HTML, "&lt;script&gt;")
			if strings.ContainsAny(r.Subject, "\r\n") {
				t.Errorf("subject %q spans lines", r.Subject)
			}
		})
	}

	js := sampleData()
	js.Link = "javascript:alert(1)"
	r, err := delivery.DefaultTemplates().Render(delivery.KindResetLink, delivery.ChannelEmail, js)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if strings.Contains(r.HTML, `href="javascript:`) {
		t.Error("HTML links to a javascript: URL")
	}
}

// TestSMSFitsTwoSegments: every SMS that can start or confirm a change
// carries the dispute link (SPEC §10), and the "password changed" notice
// says when and how: with a real dispute URL (about 94 characters) beside a
// reset link or a code, that does not fit one 160-character segment, so an
// SMS may take two concatenated GSM-7 segments (2 × 153), never more.
func TestSMSFitsTwoSegments(t *testing.T) {
	t.Parallel()
	for _, kind := range allKinds() {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			d := sampleData()
			r, err := delivery.DefaultTemplates().Render(kind, delivery.ChannelSMS, d)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			limit := 2 * 153
			if n := len([]rune(r.Text)); n > limit {
				t.Errorf("SMS is %d characters, want <= %d: %q", n, limit, r.Text)
			}
			if !strings.Contains(r.Text, d.DisputeLink) {
				t.Errorf("SMS carries no dispute link: %q", r.Text)
			}
			// Any character outside GSM-7's basic set switches the whole SMS
			// to UCS-2, where a segment is only 70 characters.
			for _, c := range r.Text {
				if !isGSM7Basic(c) {
					t.Errorf("SMS contains %q, outside the GSM-7 basic set: %q", c, r.Text)
				}
			}
			// Lock screens show SMS to whoever holds the phone.
			if strings.Contains(r.Text, d.UserName) {
				t.Errorf("SMS contains the user name: %q", r.Text)
			}
		})
	}
}

func isGSM7Basic(c rune) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	case strings.ContainsRune(" \n\r!\"#%&'()*+,-./:;<=>?@_$", c):
		return true
	}
	return false
}

func TestRenderRejectsBadInput(t *testing.T) {
	t.Parallel()
	tmpl := delivery.DefaultTemplates()
	d := sampleData()
	noLink, noCode, noName := d, d, d
	noLink.Link, noCode.Code, noName.DisplayName = "", "", ""
	tests := []struct {
		name, kind, channel string
		d                   delivery.TemplateData
	}{
		{"unknown kind", "welcome", delivery.ChannelEmail, d},
		{"unknown channel", delivery.KindOTP, "fax", d},
		{"reset without link", delivery.KindResetLink, delivery.ChannelSMS, noLink},
		{"otp without code", delivery.KindOTP, delivery.ChannelEmail, noCode},
		{"no display name", delivery.KindPasswordChanged, delivery.ChannelEmail, noName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := tmpl.Render(tc.kind, tc.channel, tc.d); err == nil {
				t.Error("Render: want error, got nil")
			}
		})
	}
}

func TestWithOverrides(t *testing.T) {
	t.Parallel()
	base := delivery.DefaultTemplates()

	t.Run("applies a good override and keeps the rest", func(t *testing.T) {
		t.Parallel()
		custom, err := base.WithOverrides(map[string]string{
			"reset_link.email.subject": "{{.DisplayName}}: password help",
			"reset_link.email.html":    `<p>Go <a href="{{.Link}}">here</a>, {{.UserName}}. {{.ExpiresIn}}</p>`,
			"otp.sms.text":             "{{.Code}} is your {{.DisplayName}} code",
		}, testRules)
		if err != nil {
			t.Fatalf("WithOverrides: %v", err)
		}
		d := sampleData()
		d.UserName = "<b>jane</b>"
		r, err := custom.Render(delivery.KindResetLink, delivery.ChannelEmail, d)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		if r.Subject != "Demo Bank: password help" {
			t.Errorf("subject = %q", r.Subject)
		}
		// Overrides of .html parts are html/template too.
		mustContain(t, r.HTML, "&lt;b&gt;jane&lt;/b&gt;")
		mustContain(t, r.HTML, "60 minutes")
		def, err := base.Render(delivery.KindResetLink, delivery.ChannelEmail, d)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		if r.Text != def.Text {
			t.Error("text part changed though only subject and HTML were overridden")
		}
		if def.Subject == r.Subject {
			t.Error("the override leaked into the default templates")
		}
		sms, err := custom.Render(delivery.KindOTP, delivery.ChannelSMS, d)
		if err != nil {
			t.Fatalf("Render: %v", err)
		}
		if sms.Text != "482913 is your Demo Bank code" {
			t.Errorf("sms = %q", sms.Text)
		}
	})

	bad := map[string]map[string]string{
		"unclosed action":   {"reset_link.email.subject": "Reset {{.DisplayName"},
		"unknown function":  {"otp.email.text": "{{shout .Code}}"},
		"unknown field":     {"otp.sms.text": "{{.Cod}} is your code"},
		"unknown key":       {"reset_link.email.body": "hello"},
		"sms has no html":   {"otp.sms.html": "<p>{{.Code}}</p>"},
		"broken html":       {"password_changed.email.html": `<a href="{{.DisputeLink}}>`},
		"one bad among ok":  {"otp.sms.text": "{{.Code}}", "otp.email.subject": "{{if}}"},
		"unterminated with": {"reset_link.sms.text": "{{with .Link}}{{.}}"},
	}
	for name, over := range bad {
		t.Run("rejects "+name, func(t *testing.T) {
			t.Parallel()
			got, err := base.WithOverrides(over, testRules)
			if err == nil {
				t.Fatalf("WithOverrides = %v, want error", got)
			}
			if !strings.HasPrefix(err.Error(), "delivery: ") {
				t.Errorf("error %q lacks the delivery: prefix", err)
			}
		})
	}
}

func mustContain(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("%q does not contain %q", s, sub)
	}
}
