package reset

import "testing"

func TestMasking(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ in, want string }{
		{"jane@example.com", "j•••@e•••.com"},
		{"j@e.co.uk", "j•••@e•••.uk"},
		{"émile@bücher.de", "é•••@b•••.de"},
		{"nodomain@", "•••"},
		{"@example.com", "•••"},
		{"", "•••"},
	} {
		if got := MaskEmail(c.in); got != c.want {
			t.Errorf("MaskEmail(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	for _, c := range []struct{ in, want string }{
		{"+14155550123", "•••••0123"},
		{"+442071838750", "•••••8750"},
		{"+3541234567", "•••••4567"},
		{"+35312345", "•••••45"},
		{"+12", "•••"},
	} {
		if got := MaskPhone(c.in); got != c.want {
			t.Errorf("MaskPhone(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestSelfServiceTargets(t *testing.T) {
	t.Parallel()
	s := New(Config{DefaultFrom: "noreply@resetd.example"})
	st := DefaultSettings("https://reset.bank.example")
	st.LinkBases = []string{"https://bank.example/reset", "https://app.bank.example/reset/"}
	st.Senders = []string{"help@bank.example", "alerts@bank.example"}
	for _, c := range []struct {
		name           string
		in             SelfServiceInput
		base, from     string
		wantErrorField string
	}{
		{"defaults", SelfServiceInput{}, "https://bank.example/reset", "help@bank.example", ""},
		{"siteName picks a base", SelfServiceInput{SiteName: "https://app.bank.example/reset"}, "https://app.bank.example/reset", "help@bank.example", ""},
		{"linkReset picks a sender", SelfServiceInput{LinkReset: "alerts@bank.example"}, "https://bank.example/reset", "alerts@bank.example", ""},
		{"linkReset URL is the base", SelfServiceInput{LinkReset: "https://app.bank.example/reset"}, "https://app.bank.example/reset", "help@bank.example", ""},
		{"siteName wins over a URL linkReset", SelfServiceInput{SiteName: "https://bank.example/reset", LinkReset: "https://app.bank.example/reset"}, "https://bank.example/reset", "help@bank.example", ""},
		{"foreign siteName", SelfServiceInput{SiteName: "https://evil.example/reset"}, "", "", "siteName"},
		{"prefix is not enough", SelfServiceInput{SiteName: "https://bank.example/reset.evil.example"}, "", "", "siteName"},
		{"foreign sender", SelfServiceInput{LinkReset: "ceo@evil.example"}, "", "", "linkReset"},
		{"foreign URL", SelfServiceInput{LinkReset: "https://evil.example"}, "", "", "linkReset"},
	} {
		base, from, err := s.selfServiceTargets(st, c.in)
		inv, _ := err.(*InvalidError)
		switch {
		case c.wantErrorField != "" && (inv == nil || inv.Field != c.wantErrorField):
			t.Errorf("%s: error %v, want one on %s", c.name, err, c.wantErrorField)
		case c.wantErrorField == "" && (err != nil || base != c.base || from != c.from):
			t.Errorf("%s: %q %q %v, want %q %q", c.name, base, from, err, c.base, c.from)
		}
	}
}

func TestSettingsPatchAndBounds(t *testing.T) {
	t.Parallel()
	st := DefaultSettings("http://127.0.0.1:8080")
	if err := st.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	exp, name := 900, "Bank"
	got := SettingsPatch{Expiration: &exp, DisplayName: &name}.Apply(st)
	if got.Expiration != 900 || got.DisplayName != "Bank" || got.OTPLength != st.OTPLength || len(got.LinkBases) != 1 {
		t.Fatalf("patch: %+v", got)
	}
	for _, bad := range []func(*Settings){
		func(s *Settings) { s.Expiration = 299 },
		func(s *Settings) { s.OTPLength = 11 },
		func(s *Settings) { s.LinkBases = []string{"http://bank.example/reset"} },
		func(s *Settings) { s.LinkBases = []string{"https://user:pw@bank.example/reset"} },
		func(s *Settings) { s.LinkBases = []string{"https://bank.example/reset#x"} },
		func(s *Settings) { s.Senders = []string{"Bank <help@bank.example>"} },
		// Addresses are the webhook policy's, checked by UpdateSettings
		// (TestWebhookURLsCannotReachInside); the form is checked here.
		func(s *Settings) { s.WebhookURL = "ftp://bank.example/hook" },
		func(s *Settings) { s.WebhookURL = "https://user:pw@bank.example/hook" },
		func(s *Settings) { s.WebhookURL = "bank.example/hook" },
		func(s *Settings) { s.RequireFacts = []string{"mothersMaidenName"} },
		func(s *Settings) { s.DisplayName = "Bank\r\nBcc: x" },
		func(s *Settings) { s.SMSCountries = []string{"U"} },
	} {
		s := DefaultSettings("http://127.0.0.1:8080")
		bad(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("accepted %+v", s)
		}
	}
	for _, ok := range []string{"http://localhost:8080/reset", "http://[::1]/reset", "https://bank.example/reset"} {
		if err := ValidateLinkBase(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
}
