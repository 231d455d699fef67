package reset

// Fuzz tests of the validators every write goes through (issue 6). Seed
// corpora are committed under testdata/fuzz/<Name>/ and run with every
// `go test`; CI also fuzzes each target for a short while, e.g.
//
//	go test -run '^$' -fuzz '^FuzzNormalizePhone$' -fuzztime 10s ./internal/reset

import (
	"encoding/json"
	"errors"
	"net/mail"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func wantInvalid(t *testing.T, err error, field string) {
	t.Helper()
	var inv *InvalidError
	if !errors.As(err, &inv) || inv.Field != field {
		t.Fatalf("refusal %v is not an InvalidError for %s", err, field)
	}
}

func controlFree(s string) bool {
	return utf8.ValidString(s) && printable(s)
}

// FuzzNormalizePhone: an accepted number comes out in E.164 (a plus and at
// most 15 digits), normalising it again changes nothing, and it is never
// premium rate; a refusal is a 400 on the phone field.
func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{"+14155550123", "+442071838750", "+19005550100", "4155550100", "+1 (415) 555-0123", "+1415555O123",
		"+14155550123\r\n", "+", "+0", "+99999999999999999999", "+１４１５５５５０１２３", "+49 30 901820", "+33 1 23 45 67 89"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizePhone(in)
		if err != nil {
			wantInvalid(t, err, "phone")
			return
		}
		if in == "" {
			if out != "" {
				t.Fatalf("empty phone became %q", out)
			}
			return
		}
		if len(out) < 3 || len(out) > 16 || out[0] != '+' || strings.Trim(out[1:], "0123456789") != "" {
			t.Fatalf("NormalizePhone(%q) = %q: not E.164", in, out)
		}
		again, err := NormalizePhone(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, out, again, err)
		}
		if err := smsAllowed(Settings{}, out); err != nil && !errors.Is(err, ErrSMSNotAllowed) {
			t.Fatalf("smsAllowed(%q): %v", out, err)
		}
		if m := MaskPhone(out); strings.Contains(m, out[1:len(out)-4]) && len(out) > 8 {
			t.Fatalf("MaskPhone(%q) = %q shows more than the last digits", out, m)
		}
	})
}

// FuzzNormalizeEmail: an accepted address is one plain addr-spec, free of
// control characters (no header injection), at most 254 bytes, stable
// under normalisation, with a lower-case domain; masking never panics and
// hides the local part.
func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{"jane@example.com", "Jane.Doe@Example.COM", "a@b", "x@y\r\nBcc: evil@example.com", "\"quoted local\"@example.com",
		"jane@example.com (comment)", "Jane <jane@example.com>", "jane@[127.0.0.1]", "jane@exa\x00mple.com", "j@é.example", "@example.com", "jane@", "a@b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeEmail(in)
		if err != nil {
			wantInvalid(t, err, "email")
			return
		}
		if in == "" {
			return
		}
		if !controlFree(out) || strings.ContainsAny(out, "\r\n\x00") || len(out) > 254 {
			t.Fatalf("NormalizeEmail(%q) = %q", in, out)
		}
		a, err := mail.ParseAddress(out)
		if err != nil || a.Address != out || a.Name != "" {
			t.Fatalf("NormalizeEmail(%q) = %q, which is not a plain address: %v", in, out, err)
		}
		at := strings.LastIndexByte(out, '@')
		if dom := out[at+1:]; dom != strings.ToLower(dom) {
			t.Fatalf("domain of %q not lower-cased", out)
		}
		if again, err := NormalizeEmail(out); err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q, %v", in, out, again, err)
		}
		// The mask keeps one letter of the local part, then bullets, then
		// '@' (the TLD may repeat letters of the local part by chance:
		// what matters is what stands before the '@').
		m := MaskEmail(out)
		if before, _, ok := strings.Cut(m, "@"); ok && utf8.RuneCountInString(before) > 1+utf8.RuneCountInString(bullets) {
			t.Fatalf("MaskEmail(%q) = %q shows more of the local part than its first letter", out, m)
		}
	})
}

// FuzzValidateLinkBase: an accepted base is an absolute https URL (http
// only on loopback) without credentials, query or fragment, and appending
// ?token=… yields a URL on the same host whose token is exactly the one
// appended: no base can send a link, or its token, elsewhere.
func FuzzValidateLinkBase(f *testing.F) {
	for _, s := range []string{"https://bank.example/reset", "http://127.0.0.1:8080/reset", "http://localhost/reset", "http://bank.example/reset",
		"https://bank.example/r?x=1", "https://bank.example/r#f", "https://user:pw@bank.example/r", "javascript:alert(1)", "//evil.example/r",
		"https://bank.example\\@evil.example/", "https://bank.example/r\r\n", "https://[::1]/r", "http://[::1]:8080/r", "https://bank.example:99999/r",
		"https://evil.example%2F@bank.example/", "HTTPS://BANK.EXAMPLE/", "https://bank.example/%zz"} {
		f.Add(s)
	}
	const token = "Oy_qCz7tAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	f.Fuzz(func(t *testing.T, base string) {
		if err := ValidateLinkBase(base); err != nil {
			return
		}
		if !controlFree(base) || strings.ContainsAny(base, "?#") {
			t.Fatalf("accepted %q", base)
		}
		u, err := url.Parse(base)
		if err != nil || u.User != nil || u.Host == "" {
			t.Fatalf("accepted %q: %v", base, err)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			t.Fatalf("accepted %q: scheme %q on host %q", base, u.Scheme, u.Hostname())
		}
		link, err := url.Parse(base + "?token=" + token)
		if err != nil || link.Host != u.Host || link.Scheme != u.Scheme || link.Query().Get("token") != token || link.Fragment != "" {
			t.Fatalf("the link built on %q is %v (%v)", base, link, err)
		}
	})
}

// FuzzSettingsPatch: whatever JSON a settings PUT carries, decoding it as
// the server does, applying it to the defaults and validating never
// panics; settings that validate keep every bound, survive the round trip
// through storage unchanged, and hold only URLs and addresses the other
// validators accept.
func FuzzSettingsPatch(f *testing.F) {
	for _, s := range []string{
		`{"expiration":3600}`, `{"expiration":299}`, `{"otpLength":10,"otpMaxAttempts":1}`,
		`{"linkBases":["https://bank.example/reset","http://127.0.0.1/r"],"senders":["help@bank.example"]}`,
		`{"linkBases":[]}`, `{"linkBases":["http://evil.example/r"]}`, `{"smsCountries":["us","GB"]}`, `{"smsCountries":["USA"]}`,
		`{"displayName":"Acme\u0000Bank"}`, `{"displayName":"<script>alert(1)</script>"}`, `{"webhookUrl":"https://hooks.example/x"}`,
		`{"requireFacts":["dateOfBirth","shoeSize"]}`, `{"templates":{"reset_link.email.subject":"{{.DisplayName}}"}}`,
		`{"sendsPerUserHour":0,"publicPerIPMinute":100000,"publicPerUsernameHour":1000}`, `{"contactChangeCooldown":2592001}`,
		`{"expiration":null}`, `{"adminResetApproval":true,"revealRecipient":true}`, `{"senders":["a@b\r\nBcc: c@d"]}`,
		`{"brandColor":"#0B3D6E"}`, `{"brandColor":"#ffff00"}`, `{"brandColor":"#fff"}`, `{"signInUrl":"javascript:alert(1)"}`,
		`{"supportUrl":"https://bank.example/help"}`, `{"logo":"PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4="}`,
		`{"logo":"data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciLz4="}`,
	} {
		f.Add([]byte(s))
	}
	const public = "https://resetd.bank.example"
	f.Fuzz(func(t *testing.T, raw []byte) {
		var p SettingsPatch
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return
		}
		st := p.Apply(DefaultSettings(public))
		if err := st.Validate(); err != nil {
			var inv *InvalidError
			if !errors.As(err, &inv) || inv.Field == "" {
				t.Fatalf("Validate refused with %v, not a field's InvalidError", err)
			}
			return
		}
		for _, r := range []struct {
			v, lo, hi int
		}{
			{st.Expiration, 300, 604800}, {st.OTPLength, 6, 10}, {st.OTPExpiration, 60, 3600}, {st.OTPMaxAttempts, 1, 10},
			{st.PasswordMinLength, 8, 64}, {st.PasswordHistory, 0, MaxPasswordHistory}, {st.SendsPerUserHour, 0, 1000},
		} {
			if r.v < r.lo || r.v > r.hi {
				t.Fatalf("valid settings out of range: %+v", st)
			}
		}
		for _, b := range st.LinkBases {
			if ValidateLinkBase(b) != nil {
				t.Fatalf("valid settings hold the link base %q", b)
			}
		}
		for _, a := range st.Senders {
			if _, err := NormalizeEmail(a); err != nil {
				t.Fatalf("valid settings hold the sender %q", a)
			}
		}
		if !controlFree(st.DisplayName) {
			t.Fatalf("valid settings hold the display name %q", st.DisplayName)
		}
		stored, err := jsonMarshal(st)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeSettings(stored, public)
		if err != nil || !reflect.DeepEqual(back, st) || back.Validate() != nil {
			t.Fatalf("round trip changed settings:\n%+v\n%+v (%v)", st, back, err)
		}
	})
}
