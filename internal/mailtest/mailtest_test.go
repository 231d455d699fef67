package mailtest

import (
	"context"
	"errors"
	"net/http"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A message as another mailer might write it: base64 HTML nested in
// multipart/mixed, and an RFC 2047 subject.
const rawMultipart = "From: Demo Bank <noreply@demobank.example>\r\n" +
	"To: jane@customer.example\r\n" +
	"Subject: =?UTF-8?q?R=C3=A9initialiser?= le mot de passe\r\n" +
	"Message-ID: <abc@demobank.example>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=outer\r\n" +
	"\r\n" +
	"--outer\r\n" +
	"Content-Type: multipart/alternative; boundary=inner\r\n" +
	"\r\n" +
	"--inner\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"Open https://reset.example/r/abc?x=3D1&y=3D2 now, a long line that is soft=\r\n" +
	" wrapped.\r\n" +
	"--inner\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+PGEgaHJlZj0iaHR0cHM6Ly9yZXNldC5leGFtcGxlL3IvYWJjIj5SZXNldDwvYT48L3A+\r\n" +
	"--inner--\r\n" +
	"--outer--\r\n"

func TestServerRecordsAndParses(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	ctx := testCtx(t)
	if err := smtp.SendMail(s.Addr(), nil, "noreply@demobank.example", []string{"jane@customer.example", "audit@demobank.example"}, []byte(rawMultipart)); err != nil {
		t.Fatalf("SendMail: %v", err)
	}
	got, err := s.Wait(ctx, 1)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	m := got[0]
	if m.From != "noreply@demobank.example" {
		t.Errorf("From = %q", m.From)
	}
	if strings.Join(m.To, ",") != "jane@customer.example,audit@demobank.example" {
		t.Errorf("To = %q", m.To)
	}
	if m.Subject != "Réinitialiser le mot de passe" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if want := "Open https://reset.example/r/abc?x=1&y=2 now, a long line that is soft wrapped."; m.Text != want {
		t.Errorf("Text = %q, want %q", m.Text, want)
	}
	if want := `<p><a href="https://reset.example/r/abc">Reset</a></p>`; m.HTML != want {
		t.Errorf("HTML = %q, want %q", m.HTML, want)
	}
	if m.Header.Get("Message-Id") != "<abc@demobank.example>" {
		t.Errorf("Message-ID = %q", m.Header.Get("Message-Id"))
	}
	if !strings.Contains(string(m.Data), "boundary=outer") {
		t.Error("Data does not hold the raw message")
	}
	if s.Count() != 1 || len(s.Messages()) != 1 {
		t.Errorf("Count = %d, Messages = %d, want 1", s.Count(), len(s.Messages()))
	}
}

func TestServerAcceptsAnyPlainAuth(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	// net/smtp sends PLAIN without TLS only to localhost, so name it so.
	addr := strings.Replace(s.Addr(), "127.0.0.1", "localhost", 1)
	auth := smtp.PlainAuth("", "anyone", "anything", "localhost")
	msg := "Subject: hi\r\n\r\nhello\r\n"
	if err := smtp.SendMail(addr, auth, "a@example.com", []string{"b@example.com"}, []byte(msg)); err != nil {
		t.Fatalf("SendMail with auth: %v", err)
	}
	if _, err := s.Wait(testCtx(t), 1); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestServerFailNext(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	msg := []byte("Subject: hi\r\n\r\nhello\r\n")
	s.FailNext(2, 451)
	for range 2 {
		err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, msg)
		var te *textproto.Error
		if !errors.As(err, &te) || te.Code != 451 {
			t.Fatalf("SendMail = %v, want a 451 reply", err)
		}
	}
	if err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, msg); err != nil {
		t.Fatalf("SendMail after the failures: %v", err)
	}
	if n := s.Count(); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
}

func TestServerStopStart(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	addr := s.Addr()
	msg := []byte("Subject: hi\r\n\r\nhello\r\n")
	s.Stop()
	s.Stop() // idempotent
	if err := smtp.SendMail(addr, nil, "a@example.com", []string{"b@example.com"}, msg); err == nil {
		t.Fatal("SendMail to a stopped server succeeded")
	}
	s.Start()
	if s.Addr() != addr {
		t.Errorf("address changed from %s to %s", addr, s.Addr())
	}
	if err := smtp.SendMail(addr, nil, "a@example.com", []string{"b@example.com"}, msg); err != nil {
		t.Fatalf("SendMail after Start: %v", err)
	}
	if n := s.Count(); n != 1 {
		t.Errorf("Count = %d, want 1", n)
	}
}

func TestWaitHonoursContext(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Wait = %v, want context.Canceled", err)
	}
}

func TestServerURL(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	if got, want := s.URL("noreply@demobank.example"), "smtp://"+s.Addr()+"?tls=none&from=noreply@demobank.example"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if got := s.URL("Demo Bank <noreply+reset@demobank.example>"); !strings.HasSuffix(got, "from=Demo%20Bank%20%3Cnoreply+reset@demobank.example%3E") {
		t.Errorf("URL = %q", got)
	}
}

func TestTwilioFake(t *testing.T) {
	t.Parallel()
	const sid, token = "AC0123456789abcdef0123456789abcdef", "tok"
	tw := NewTwilio(t, sid, token)
	u, err := url.Parse(tw.URL("+15550001111"))
	if err != nil {
		t.Fatalf("URL: %v", err)
	}
	if u.Scheme != "twilio" || u.User.Username() != sid || u.RawQuery != "from=+15550001111&scheme=http" {
		t.Errorf("URL = %s", u)
	}
	endpoint := "http://" + u.Host + "/2010-04-01/Accounts/" + sid + "/Messages.json"
	post := func(user, pass, path string, form url.Values) int {
		t.Helper()
		req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, path, strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	form := url.Values{"To": {"+15557654321"}, "From": {"+15550001111"}, "Body": {"hello"}}

	if got := post(sid, "wrong", endpoint, form); got != http.StatusUnauthorized {
		t.Errorf("wrong token: status %d, want 401", got)
	}
	if user, pass, ok := tw.BasicAuth(); !ok || user != sid || pass != "wrong" {
		t.Errorf("BasicAuth = %q, %q, %v", user, pass, ok)
	}
	if got := post(sid, token, strings.Replace(endpoint, "Messages", "Calls", 1), form); got != http.StatusNotFound {
		t.Errorf("wrong path: status %d, want 404", got)
	}
	if got := post(sid, token, endpoint, url.Values{"To": {"+15557654321"}}); got != http.StatusBadRequest {
		t.Errorf("missing fields: status %d, want 400", got)
	}
	tw.FailNext(1, http.StatusServiceUnavailable)
	if got := post(sid, token, endpoint, form); got != http.StatusServiceUnavailable {
		t.Errorf("injected failure: status %d, want 503", got)
	}
	if got := post(sid, token, endpoint, form); got != http.StatusCreated {
		t.Errorf("good request: status %d, want 201", got)
	}
	got, err := tw.Wait(testCtx(t), 1)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if want := (SMS{To: "+15557654321", From: "+15550001111", Body: "hello"}); len(got) != 1 || got[0] != want {
		t.Errorf("Messages = %+v, want [%+v]", got, want)
	}
}

func TestServerHoldNext(t *testing.T) {
	t.Parallel()
	s := NewServer(t)
	msg := []byte("Subject: hi\r\n\r\nhello\r\n")
	held := s.HoldNext(1)
	errc := make(chan error, 1)
	go func() { errc <- smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"b@example.com"}, msg) }()
	if to := <-held; to != "b@example.com" {
		t.Fatalf("held message to %q", to)
	}
	select {
	case err := <-errc:
		t.Fatalf("a held message was answered before Release: %v", err)
	default:
	}
	s.Release()
	var te *textproto.Error
	if err := <-errc; !errors.As(err, &te) || te.Code != 451 {
		t.Fatalf("SendMail after Release = %v, want a 451 reply", err)
	}
	if err := smtp.SendMail(s.Addr(), nil, "a@example.com", []string{"c@example.com"}, msg); err != nil {
		t.Fatalf("SendMail after the hold: %v", err)
	}
	if msgs := s.Messages(); len(msgs) != 1 || msgs[0].To[0] != "c@example.com" {
		t.Errorf("recorded %v, want only the message sent after the hold", msgs)
	}
}
