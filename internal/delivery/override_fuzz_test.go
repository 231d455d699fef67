package delivery

// FuzzOverride (issue 15): whatever an institution PUTs as an override,
// the check answers with a *TemplateError or accepts it, never panics; an
// accepted override renders without error and within MaxMessageBytes even
// with every placeholder at the longest value the rules allow. CI runs
//
//	go test -run '^$' -fuzz '^FuzzOverride$' -fuzztime 10s ./internal/delivery

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func FuzzOverride(f *testing.F) {
	for _, s := range []string{
		"{{.DisplayName}}: reset", "{{range 200000000}}{{end}}", "{{if .Link}}{{.Link}}{{else}}{{.Code}}{{end}}",
		`<img src="https://collector.example/p.gif?l={{.Link}}">`, `<a href="{{.Link}}">x</a>`, "{{define \"a\"}}{{end}}",
		"{{with .Code}}{{.}}{{end}}", "{{printf \"%s\" .Code}}", `<div style="color:{{.UserName}}">`, "{{/* c */}}{{.Code}}",
		"{{if .UserName}}{{if .Code}}{{.Link}}{{end}}{{end}}", strings.Repeat("{{.UserName}}", 20), "{{.Link", "{{end}}",
		`<script>{{.Link}}</script>`, "<title>{{.DisplayName}}</title>", `<a href=https:&#x2f;/x.example>`,
		`{{define "reset_link.email.subject"}}{{range 9}}{{end}}{{end}}`, `{{block "otp.sms.text" .}}{{.Code}}{{end}}`,
	} {
		for k := range 4 {
			f.Add(uint8(k), s)
		}
	}
	base := DefaultTemplates()
	keys := templateKeys()
	maxLen := map[string]int{"DisplayName": 100, "UserName": 1024, "Link": 200, "DisputeLink": 200, "Code": 10, "ExpiresIn": 16, "Changed": 16}
	rules := OverrideRules{LinkBases: []string{"https://reset.bank.example/reset"}, MaxLen: maxLen}
	fill := func(name string) string { return strings.Repeat(`"`, maxLen[name]) }
	worst := TemplateData{
		DisplayName: fill("DisplayName"), UserName: fill("UserName"), Link: fill("Link"), DisputeLink: fill("DisputeLink"),
		Code: fill("Code"), Changed: fill("Changed"), ExpiresIn: 10079 * time.Minute,
	}
	f.Fuzz(func(t *testing.T, k uint8, src string) {
		key := keys[int(k)%len(keys)]
		got, err := base.WithOverrides(map[string]string{key: src}, rules)
		if err != nil {
			var te *TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("refusal %v (%T) is not a *TemplateError", err, err)
			}
			return
		}
		kind, channel, _ := strings.Cut(key, ".")
		channel, _, _ = strings.Cut(channel, ".")
		r, err := got.Render(kind, channel, worst)
		if err != nil {
			t.Fatalf("accepted override %q of %s fails to render: %v", src, key, err)
		}
		if n := len(r.Subject) + len(r.Text) + len(r.HTML); n > MaxMessageBytes {
			t.Fatalf("accepted override %q of %s renders %d bytes", src, key, n)
		}
	})
}
