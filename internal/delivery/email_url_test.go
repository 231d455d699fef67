package delivery

import (
	"strings"
	"testing"
)

func TestNewSMTPSenderURL(t *testing.T) {
	t.Parallel()
	good := []struct {
		url      string
		wantAddr string
		wantTLS  string
		wantFrom string
	}{
		{"smtp://mail.example.com", "mail.example.com:587", "TLSMandatory", ""},
		{"smtp://mail.example.com?tls=starttls&from=noreply@bank.example", "mail.example.com:587", "TLSMandatory", "noreply@bank.example"},
		{"smtp://mail.example.com?tls=none", "mail.example.com:587", "NoTLS", ""},
		{"smtp://127.0.0.1:2525?tls=none&from=noreply@bank.example", "127.0.0.1:2525", "NoTLS", "noreply@bank.example"},
		{"smtp://mail.example.com?tls=implicit", "mail.example.com:465", "TLSMandatory", ""},
		{"smtps://mail.example.com", "mail.example.com:465", "TLSMandatory", ""},
		{"smtps://mail.example.com:2465?tls=implicit", "mail.example.com:2465", "TLSMandatory", ""},
		{"smtp://user:p%40ss@mail.example.com:25?from=noreply@bank.example", "mail.example.com:25", "TLSMandatory", "noreply@bank.example"},
		// '+' is a literal plus, as in plus-addressing.
		{"smtp://mail.example.com?from=noreply+reset@bank.example", "mail.example.com:587", "TLSMandatory", "noreply+reset@bank.example"},
		{"smtp://mail.example.com?from=Demo%20Bank%20%3Cnoreply@bank.example%3E", "mail.example.com:587", "TLSMandatory", "Demo Bank <noreply@bank.example>"},
		{"smtp://mail.example.com/", "mail.example.com:587", "TLSMandatory", ""},
		{"smtp://user:pass@127.0.0.1:2525?tls=none", "127.0.0.1:2525", "NoTLS", ""},
		{"smtp://user:pass@[::1]:2525?tls=none", "[::1]:2525", "NoTLS", ""},
	}
	for _, tc := range good {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			s, err := NewSMTPSender(tc.url)
			if err != nil {
				t.Fatalf("NewSMTPSender: %v", err)
			}
			if got := s.addr; got != tc.wantAddr {
				t.Errorf("addr = %q, want %q", got, tc.wantAddr)
			}
			if got := s.client.TLSPolicy(); got != tc.wantTLS {
				t.Errorf("tls policy = %q, want %q", got, tc.wantTLS)
			}
			if got := s.From(); got != tc.wantFrom {
				t.Errorf("From() = %q, want %q", got, tc.wantFrom)
			}
		})
	}

	bad := []string{
		"",
		"mail.example.com",
		"http://mail.example.com",
		"smtp://",
		"smtp://:25",
		"smtp://mail.example.com?tls=bogus",
		"smtp://mail.example.com?tsl=none",
		"smtp://mail.example.com?tls=none&tls=starttls",
		"smtps://mail.example.com?tls=none",
		"smtp://mail.example.com:0",
		"smtp://mail.example.com:99999",
		"smtp://mail.example.com:abc",
		"smtp://mail.example.com?from=not-an-address",
		"smtp://mail.example.com?from=%zz",
		"smtp://mail.example.com/some/path",
		"smtp://user:s3cr3t%zz@mail.example.com",
		"smtp://user:s3cr3t@mail example.com",
		"smtp://user:s3cr3t@mail.example.com?tls=none",
		"smtps://[2001:db8::25]",
	}
	for _, raw := range bad {
		t.Run("bad/"+raw, func(t *testing.T) {
			t.Parallel()
			_, err := NewSMTPSender(raw)
			if err == nil {
				t.Fatal("NewSMTPSender: want error, got nil")
			}
			if !strings.HasPrefix(err.Error(), "delivery: ") {
				t.Errorf("error %q lacks the delivery: prefix", err)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}
