package delivery_test

import (
	"errors"
	"fmt"
	"html"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/i18n"
)

// gsm7Basic is the GSM 03.38 default alphabet (one septet each);
// gsm7Ext its extension table (two septets: escape and character).
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Ext   = "^{}\\[~]|€\f"
)

// segments counts the SMS segments text takes: GSM-7 when every character
// is in its alphabet (160 septets alone, 153 each when concatenated), else
// UCS-2 (70, then 67). It returns the encoding and the characters that
// forced UCS-2.
func segments(text string) (n int, encoding string, outside string) {
	septets := 0
	for _, c := range text {
		switch {
		case strings.ContainsRune(gsm7Basic, c):
			septets++
		case strings.ContainsRune(gsm7Ext, c):
			septets += 2
		default:
			if !strings.ContainsRune(outside, c) {
				outside += string(c)
			}
		}
	}
	if outside != "" {
		units := len([]rune(text)) // no character here is outside the BMP
		if units <= 70 {
			return 1, "UCS-2", outside
		}
		return (units + 66) / 67, "UCS-2", outside
	}
	if septets <= 160 {
		return 1, "GSM-7", ""
	}
	return (septets + 152) / 153, "GSM-7", ""
}

// The longest realistic values: a 43-character token after a bank's own
// reset URL, a 10-digit code (otpLength's maximum), a long display name.
func longData(lang string) delivery.TemplateData {
	return delivery.TemplateData{
		Lang:        lang,
		DisplayName: "Demo Savings Bank",
		Link:        "https://reset.demosavingsbank.example/reset?token=3q2-7wWgL8tNf6kQpZr1aYxVbC0dE9uHjIkLmNoPqRs",
		Code:        "4829130571",
		ExpiresIn:   60 * time.Minute,
		DisputeLink: "https://reset.demosavingsbank.example/reset/dispute?token=9xY8wV7uT6sR5qP4oN3mL2kJ1iH0gFeDcBa-_Zz12345",
		When:        time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC),
		How:         delivery.HowLink,
	}
}

// TestSMSSegmentsInEveryLanguage renders each SMS in each language with
// the longest realistic link and code. Every SMS stays in the GSM-7
// alphabet (one UCS-2 character would cut a segment from 160 characters
// to 70); without its dispute link each fits one segment, and with it (a
// second URL of about 100 characters) in no more segments than English
// needs, at most two.
// What no wording can fit is listed in couldNotFit, and the test fails
// if that list changes.
func TestSMSSegmentsInEveryLanguage(t *testing.T) {
	t.Parallel()
	tmpl := delivery.DefaultTemplates()
	kinds := []string{delivery.KindResetLink, delivery.KindOTP, delivery.KindPasswordChanged, delivery.KindContactChanged}
	// Spanish "días" (a link valid for two days or more) carries an í,
	// which GSM-7 lacks; a 60-minute link does not say it.
	couldNotFit := map[string]string{"es/reset_link/days": "í"}
	found := map[string]string{}
	english := map[string]int{}
	var report strings.Builder
	for _, lang := range i18n.Shipped() {
		for _, kind := range kinds {
			for _, variant := range []string{"dispute", "plain", "days"} {
				if variant == "days" && kind != delivery.KindResetLink {
					continue // only a link lives that long
				}
				d := longData(lang)
				d.Changed = delivery.ChangedPhone
				switch variant {
				case "plain":
					d.DisputeLink = ""
				case "days":
					d.ExpiresIn = 7 * 24 * time.Hour
				}
				r, err := tmpl.Render(kind, delivery.ChannelSMS, d)
				if err != nil {
					t.Fatalf("%s %s: %v", lang, kind, err)
				}
				n, enc, outside := segments(r.Text)
				fmt.Fprintf(&report, "%s %-16s %-7s %3d chars %s %d segment(s)\n", lang, kind, variant, len([]rune(r.Text)), enc, n)
				name := lang + "/" + kind + "/" + variant
				if outside != "" {
					found[name] = outside
					continue
				}
				key := kind + "/" + variant
				if lang == "en" {
					english[key] = n
				}
				limit := 1
				if kind == delivery.KindResetLink || (variant != "plain" && kind != delivery.KindContactChanged) {
					limit = 2
				}
				if n > limit || n > english[key] {
					t.Errorf("%s: %d segments, want at most %d (English: %d): %q", name, n, limit, english[key], r.Text)
				}
			}
		}
	}
	for name, chars := range found {
		if couldNotFit[name] != chars {
			t.Errorf("%s: %q is outside GSM-7 (UCS-2: 70 characters a segment)", name, chars)
		}
	}
	for name := range couldNotFit {
		if _, ok := found[name]; !ok {
			t.Errorf("%s is listed as not fitting GSM-7 but now does: update couldNotFit", name)
		}
	}
	t.Logf("SMS segments with the longest realistic values:\n%s", report.String())
}

// englishSentences are the English catalog's sentences long enough to be
// recognised (placeholders cut out): none may appear in another language.
func englishSentences() []string {
	en := i18n.Messages().In("en")
	var out []string
	for _, id := range i18n.Messages().IDs("en") {
		s := en.T(id, i18n.Data{})
		for _, part := range regexp.MustCompile(`<no value>|\{\{[^}]*\}\}`).Split(s, -1) {
			part = strings.TrimSpace(part)
			if len(part) >= 12 {
				out = append(out, part)
			}
		}
	}
	return out
}

func TestEmailsSpeakTheirLanguage(t *testing.T) {
	t.Parallel()
	tmpl := delivery.DefaultTemplates()
	english := englishSentences()
	greeting := map[string]string{"en": "Hello,", "es": "Hola:", "fr": "Bonjour,", "de": "Guten Tag,", "pt": "Olá,"}
	for _, lang := range i18n.Shipped() {
		for _, kind := range []string{delivery.KindResetLink, delivery.KindOTP, delivery.KindPasswordChanged, delivery.KindContactChanged} {
			d := longData(lang)
			d.UserName, d.Changed = "jdoe", delivery.ChangedEmail
			r, err := tmpl.Render(kind, delivery.ChannelEmail, d)
			if err != nil {
				t.Fatal(err)
			}
			if r.Lang != lang || !strings.Contains(r.HTML, `<html lang="`+lang+`">`) {
				t.Errorf("%s %s: Lang %q, HTML %.80q", lang, kind, r.Lang, r.HTML)
			}
			text, page := r.Text, html.UnescapeString(r.HTML)
			if !strings.HasPrefix(text, greeting[lang]) || !strings.Contains(page, greeting[lang]) {
				t.Errorf("%s %s: does not open with %q:\n%s", lang, kind, greeting[lang], text)
			}
			if lang == "en" {
				continue
			}
			for _, s := range english {
				for _, part := range []string{r.Subject, text, page} {
					if strings.Contains(part, s) {
						t.Errorf("%s %s: English %q in %q", lang, kind, s, part)
					}
				}
			}
		}
	}
	// A language without a catalog renders in English.
	d := longData("it")
	r, err := tmpl.Render(delivery.KindOTP, delivery.ChannelEmail, d)
	if err != nil || r.Lang != "en" || !strings.HasPrefix(r.Text, "Hello,") {
		t.Errorf("Render(it) = %q, %v", r.Lang, err)
	}
}

func TestPasswordChangedSaysWhenInTheLocalesOrder(t *testing.T) {
	t.Parallel()
	for lang, want := range map[string]string{
		"en": "2026-12-31 23:59 UTC (how: reset link)",
		"fr": "le 31/12/2026 à 23:59 UTC (moyen : lien de réinitialisation)",
		"de": "am 31.12.2026 um 23:59 UTC geändert (Weg: Link zum Zurücksetzen)",
		"es": "el 31/12/2026 a las 23:59 UTC (medio: enlace de restablecimiento)",
		"pt": "em 31/12/2026 às 23:59 UTC (meio: link de redefinição)",
	} {
		r, err := delivery.DefaultTemplates().Render(delivery.KindPasswordChanged, delivery.ChannelEmail, longData(lang))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(r.Text, want) {
			t.Errorf("%s: %q not in\n%s", lang, want, r.Text)
		}
	}
}

func TestOverridesPerLanguage(t *testing.T) {
	t.Parallel()
	rules := delivery.OverrideRules{LinkBases: []string{"https://reset.demosavingsbank.example/reset"}, MaxLen: map[string]int{
		"DisplayName": 100, "UserName": 1024, "Link": 200, "DisputeLink": 200, "Code": 10, "ExpiresIn": 24, "Changed": 32,
	}}
	custom, err := delivery.DefaultTemplates().WithOverrides(map[string]string{
		"otp.email.subject":    "Code {{.Code}} for {{.DisplayName}}",
		"fr:otp.email.subject": "Votre code {{.DisplayName}} : {{.Code}}",
		"de:otp.sms.text":      "{{.DisplayName}}: Code {{.Code}}, {{.ExpiresIn}} gültig.",
	}, rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ lang, channel, want string }{
		{"fr", delivery.ChannelEmail, "Votre code Demo Savings Bank : 4829130571"},
		{"en", delivery.ChannelEmail, "Code 4829130571 for Demo Savings Bank"},
		{"de", delivery.ChannelEmail, "Code 4829130571 for Demo Savings Bank"}, // the override for every language
		{"de", delivery.ChannelSMS, "Demo Savings Bank: Code 4829130571, 60 Minuten gültig."},
		{"es", delivery.ChannelSMS, "Demo Savings Bank: su clave temporal es 4829130571."},
	} {
		r, err := custom.Render(delivery.KindOTP, tc.channel, longData(tc.lang))
		if err != nil {
			t.Fatal(err)
		}
		got := r.Subject
		if tc.channel == delivery.ChannelSMS {
			got = r.Text
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s %s: %q, want %q", tc.lang, tc.channel, got, tc.want)
		}
	}
	// The body of a French email is still the French default.
	r, _ := custom.Render(delivery.KindOTP, delivery.ChannelEmail, longData("fr"))
	if !strings.HasPrefix(r.Text, "Bonjour,") {
		t.Errorf("French text: %q", r.Text)
	}
	// An override sees the placeholders in its language.
	c2, err := delivery.DefaultTemplates().WithOverrides(map[string]string{"contact_changed.sms.text": "{{.DisplayName}}: {{.Changed}}"}, rules)
	if err != nil {
		t.Fatal(err)
	}
	d := longData("de")
	d.Changed = delivery.ChangedPhone
	if r, _ := c2.Render(delivery.KindContactChanged, delivery.ChannelSMS, d); r.Text != "Demo Savings Bank: Telefonnummer" {
		t.Errorf("German override: %q", r.Text)
	}

	for key, why := range map[string]string{
		"it:otp.email.subject":    `unknown language "it"`,
		"FR:otp.email.subject":    `unknown language "FR"`,
		"fr-CA:otp.email.subject": `unknown language "fr-CA"`,
		":otp.email.subject":      `unknown language ""`,
		"fr:otp.email.footer":     "unknown key",
		"fr:fr:otp.email.subject": "unknown key",
		"fr:":                     "unknown key",
	} {
		_, err := delivery.DefaultTemplates().WithOverrides(map[string]string{key: "x"}, rules)
		var te *delivery.TemplateError
		if !errors.As(err, &te) || te.Key != key || !strings.Contains(te.Reason, why) {
			t.Errorf("%q: %v, want a TemplateError naming it: %s", key, err, why)
		}
	}
	// A language's override is checked by the same rules as any other.
	_, err = delivery.DefaultTemplates().WithOverrides(map[string]string{"fr:otp.email.html": `<a href="https://evil.example/">x</a>`}, rules)
	var te *delivery.TemplateError
	if !errors.As(err, &te) || te.Key != "fr:otp.email.html" {
		t.Errorf("a French HTML override linking elsewhere: %v", err)
	}
	_, err = delivery.DefaultTemplates().WithOverrides(map[string]string{"de:otp.sms.text": `{{template "x"}}`}, rules)
	if !errors.As(err, &te) || te.Key != "de:otp.sms.text" {
		t.Errorf("a German override with a template call: %v", err)
	}
}
