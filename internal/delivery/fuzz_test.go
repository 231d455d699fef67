package delivery

// FuzzRender (issue 6): display names and usernames come from institution
// settings and the bank's directory, so from admin clients and CSV files.
// Whatever printable text they hold, every message renders, a subject
// stays one header line, and the HTML part gains no markup. The seed
// corpus is committed under testdata/fuzz/FuzzRender/; CI also runs
//
//	go test -run '^$' -fuzz '^FuzzRender$' -fuzztime 10s ./internal/delivery

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func printableText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError {
			return false
		}
	}
	return true
}

func FuzzRender(f *testing.F) {
	for _, s := range [][2]string{
		{"Demo Bank", "jdoe"}, {"<script>alert(1)</script>", "<img src=x onerror=alert(1)>"}, {`"><a href="https://evil.example">`, "' onmouseover='x"},
		{"Bank &amp; Trust", "{{.Link}}"}, {"Banque d’épargne", "Zoë"}, {"{{template \"x\"}}", "%s%d"}, {"</title><style>", "</p></div>"},
		{"Bank", ""}, {"ملف", "用户"}, {"A\u202eB", "x\u200by"}, {strings.Repeat("B", 100), strings.Repeat("u", 256)},
	} {
		f.Add(s[0], s[1])
	}
	tmpl := DefaultTemplates()
	const link = "https://bank.example/reset?token=Oy_qCz7tAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	data := func(display, user string) TemplateData {
		return TemplateData{DisplayName: display, UserName: user, Link: link, Code: "12345678", ExpiresIn: time.Hour,
			DisputeLink: "https://resetd.bank.example/reset/dispute?token=BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", Changed: "email address"}
	}
	f.Fuzz(func(t *testing.T, display, user string) {
		if strings.TrimSpace(display) == "" || !printableText(display) || !printableText(user) {
			return // the server refuses these before they reach a template
		}
		baseUser := ""
		if user != "" {
			baseUser = "user"
		}
		for _, kind := range []string{KindResetLink, KindOTP, KindPasswordChanged, KindContactChanged} {
			for _, channel := range []string{ChannelEmail, ChannelSMS} {
				got, err := tmpl.Render(kind, channel, data(display, user))
				if err != nil {
					t.Fatalf("%s/%s with display name %q, user %q: %v", kind, channel, display, user, err)
				}
				base, err := tmpl.Render(kind, channel, data("Bank", baseUser))
				if err != nil {
					t.Fatal(err)
				}
				if strings.ContainsAny(got.Subject, "\r\n") {
					t.Fatalf("%s subject spans lines: %q", kind, got.Subject)
				}
				// Escaped names add no tag, attribute or quote: the HTML has as
				// many of each markup character as with plain names.
				for _, c := range []string{"<", ">", `"`, "'"} {
					if a, b := strings.Count(got.HTML, c), strings.Count(base.HTML, c); a != b {
						t.Fatalf("%s/%s: the names added markup (%d %s instead of %d):\n%s", kind, channel, a, c, b, got.HTML)
					}
				}
				if kind == KindResetLink && (!strings.Contains(got.Text, link) || (channel == ChannelEmail && !strings.Contains(got.HTML, link))) {
					t.Fatalf("%s/%s lost its link:\n%s\n%s", kind, channel, got.Text, got.HTML)
				}
			}
		}
	})
}
