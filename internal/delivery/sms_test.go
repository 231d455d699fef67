package delivery_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/mailtest"
)

const (
	testSID   = "AC0123456789abcdef0123456789abcdef"
	testToken = "tok-s3cr3t"
	testFrom  = "+15550001111"
	testTo    = "+15557654321"
	// The body holds an OTP: it must never show up in an error.
	testSMSBody = "Demo Bank code: 987654. Expires in 10 minutes. Never share it."
)

func TestNewTwilioSenderURL(t *testing.T) {
	t.Parallel()
	good := []struct {
		url      string
		wantFrom string
	}{
		{"twilio://" + testSID + ":" + testToken + "@api.twilio.com?from=+15550001111", "+15550001111"},
		{"twilio://" + testSID + ":" + testToken + "@api.twilio.com?from=%2B15550001111", "+15550001111"},
		{"twilio://" + testSID + ":" + testToken + "@127.0.0.1:8080?from=+15550001111&scheme=http", "+15550001111"},
		{"twilio://" + testSID + ":" + testToken + "@127.0.0.1:8080?scheme=https&from=DemoBank", "DemoBank"},
	}
	for _, tc := range good {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			s, err := delivery.NewTwilioSender(tc.url, nil)
			if err != nil {
				t.Fatalf("NewTwilioSender: %v", err)
			}
			if got := s.From(); got != tc.wantFrom {
				t.Errorf("From() = %q, want %q", got, tc.wantFrom)
			}
		})
	}
	bad := []string{
		"",
		"https://api.twilio.com?from=+15550001111",
		"twilio://api.twilio.com?from=+15550001111",
		"twilio://" + testSID + "@api.twilio.com?from=+15550001111",
		"twilio://" + testSID + ":" + testToken + "@api.twilio.com",
		"twilio://" + testSID + ":" + testToken + "@api.twilio.com?from=",
		"twilio://" + testSID + ":" + testToken + "@api.twilio.com?from=+15550001111&scheme=ftp",
		"twilio://" + testSID + ":" + testToken + "@api.twilio.com?from=+15550001111&form=x",
		"twilio://" + testSID + ":" + testToken + "@api.twilio.com/2010-04-01?from=+15550001111",
		"twilio://" + testSID + ":" + testToken + "%zz@api.twilio.com?from=+15550001111",
	}
	for _, raw := range bad {
		t.Run("bad/"+raw, func(t *testing.T) {
			t.Parallel()
			_, err := delivery.NewTwilioSender(raw, nil)
			if err == nil {
				t.Fatal("NewTwilioSender: want error, got nil")
			}
			if !strings.HasPrefix(err.Error(), "delivery: ") {
				t.Errorf("error %q lacks the delivery: prefix", err)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q leaks the token", err)
			}
		})
	}
}

// TestTwilioRequestShape pins the wire format against a bare handler, so it
// does not depend on how forgiving the fake is.
func TestTwilioRequestShape(t *testing.T) {
	t.Parallel()
	type seen struct {
		method, path, contentType, user, pass string
		form                                  url.Values
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		_ = r.ParseForm()
		got <- seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), user, pass, r.PostForm}
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(srv.Close)

	raw := "twilio://" + testSID + ":" + testToken + "@" + strings.TrimPrefix(srv.URL, "http://") + "?from=+15550001111&scheme=http"
	s, err := delivery.NewTwilioSender(raw, srv.Client())
	if err != nil {
		t.Fatalf("NewTwilioSender: %v", err)
	}
	if err := s.Send(testCtx(t), delivery.Message{Channel: delivery.ChannelSMS, To: testTo, Text: testSMSBody}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	r := <-got
	if r.method != http.MethodPost {
		t.Errorf("method = %s, want POST", r.method)
	}
	if want := "/2010-04-01/Accounts/" + testSID + "/Messages.json"; r.path != want {
		t.Errorf("path = %s, want %s", r.path, want)
	}
	if r.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("content type = %s", r.contentType)
	}
	if r.user != testSID || r.pass != testToken {
		t.Errorf("basic auth = %q:%q, want %q:%q", r.user, r.pass, testSID, testToken)
	}
	want := url.Values{"To": {testTo}, "From": {testFrom}, "Body": {testSMSBody}}
	if r.form.Encode() != want.Encode() {
		t.Errorf("form = %v, want %v", r.form, want)
	}
}

func TestTwilioSender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		failStatus    int // 0: no injected failure
		token         string
		wantErr       bool
		wantPermanent bool
		wantInError   string
	}{
		{name: "accepted", token: testToken},
		{name: "bad number", failStatus: 400, token: testToken, wantErr: true, wantPermanent: true, wantInError: "21211"},
		{name: "wrong token", token: "wrong", wantErr: true, wantPermanent: true, wantInError: "20003"},
		{name: "forbidden", failStatus: 403, token: testToken, wantErr: true, wantPermanent: true},
		{name: "rate limited", failStatus: 429, token: testToken, wantErr: true, wantInError: "20429"},
		{name: "server error", failStatus: 500, token: testToken, wantErr: true},
		{name: "unavailable", failStatus: 503, token: testToken, wantErr: true, wantInError: "503"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tw := mailtest.NewTwilio(t, testSID, testToken)
			raw := strings.Replace(tw.URL(testFrom), ":"+testToken+"@", ":"+tc.token+"@", 1)
			s, err := delivery.NewTwilioSender(raw, nil)
			if err != nil {
				t.Fatalf("NewTwilioSender: %v", err)
			}
			if tc.failStatus != 0 {
				tw.FailNext(1, tc.failStatus)
			}
			ctx := testCtx(t)
			err = s.Send(ctx, delivery.Message{Channel: delivery.ChannelSMS, To: testTo, Text: testSMSBody})
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				got, err := tw.Wait(ctx, 1)
				if err != nil {
					t.Fatalf("Wait: %v", err)
				}
				if want := (mailtest.SMS{To: testTo, From: testFrom, Body: testSMSBody}); got[0] != want {
					t.Errorf("twilio got %+v, want %+v", got[0], want)
				}
				if user, pass, _ := tw.BasicAuth(); user != testSID || pass != testToken {
					t.Errorf("basic auth = %q:%q", user, pass)
				}
				return
			}
			if err == nil {
				t.Fatal("Send: want error, got nil")
			}
			if got := delivery.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.wantPermanent)
			}
			if !strings.Contains(err.Error(), tc.wantInError) {
				t.Errorf("error %q does not mention %q", err, tc.wantInError)
			}
			if strings.Contains(err.Error(), "987654") || strings.Contains(err.Error(), testToken) {
				t.Errorf("error %q leaks the body or the token", err)
			}
			if n := tw.Count(); n != 0 {
				t.Errorf("twilio accepted %d messages, want 0", n)
			}
		})
	}
}

func TestTwilioSenderNetworkError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	raw := "twilio://" + testSID + ":" + testToken + "@" + strings.TrimPrefix(srv.URL, "http://") + "?from=+15550001111&scheme=http"
	srv.Close() // nothing listens there any more
	s, err := delivery.NewTwilioSender(raw, nil)
	if err != nil {
		t.Fatalf("NewTwilioSender: %v", err)
	}
	err = s.Send(testCtx(t), delivery.Message{To: testTo, Text: testSMSBody})
	if err == nil || delivery.IsPermanent(err) {
		t.Errorf("Send to a closed port = %v, want a retryable error", err)
	}
}

func TestSMSSendersRejectBadMessages(t *testing.T) {
	t.Parallel()
	tw := mailtest.NewTwilio(t, testSID, testToken)
	twilio, err := delivery.NewTwilioSender(tw.URL(testFrom), nil)
	if err != nil {
		t.Fatalf("NewTwilioSender: %v", err)
	}
	hook, err := delivery.NewWebhookSMSSender("webhook+http://127.0.0.1:1/hook?secret=x", nil, nil)
	if err != nil {
		t.Fatalf("NewWebhookSMSSender: %v", err)
	}
	t.Cleanup(func() {
		if n := tw.Count(); n != 0 {
			t.Errorf("twilio accepted %d messages, want 0", n)
		}
	})
	msgs := map[string]delivery.Message{
		"not e164":      {To: "5557654321", Text: "hi"},
		"letters":       {To: "+1555CALLNOW", Text: "hi"},
		"empty to":      {Text: "hi"},
		"empty body":    {To: testTo},
		"email channel": {Channel: delivery.ChannelEmail, To: testTo, Text: "hi"},
	}
	for name, m := range msgs {
		for sname, s := range map[string]delivery.Sender{"twilio": twilio, "webhook": hook} {
			t.Run(sname+"/"+name, func(t *testing.T) {
				t.Parallel()
				if err := s.Send(testCtx(t), m); !delivery.IsPermanent(err) {
					t.Errorf("Send = %v, want a permanent error", err)
				}
			})
		}
	}
}

func TestNewSMSSender(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		want    string // type name, "" for an error
		wantErr bool
	}{
		{url: "twilio://" + testSID + ":" + testToken + "@api.twilio.com?from=+15550001111", want: "twilio"},
		{url: "webhook+https://sms.bank.example/hook?secret=abc", want: "webhook"},
		{url: "webhook+http://127.0.0.1:9/hook?secret=abc", want: "webhook"},
		{url: "smtp://mail.example.com", wantErr: true},
		{url: "https://sms.bank.example/hook?secret=abc", wantErr: true},
		{url: "no scheme at all", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			t.Parallel()
			s, err := delivery.NewSMSSender(tc.url, nil)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("NewSMSSender = %T, want error", s)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewSMSSender: %v", err)
			}
			switch s.(type) {
			case *delivery.TwilioSender:
				if tc.want != "twilio" {
					t.Errorf("got %T, want %s", s, tc.want)
				}
			case *delivery.WebhookSMSSender:
				if tc.want != "webhook" {
					t.Errorf("got %T, want %s", s, tc.want)
				}
			default:
				t.Errorf("got %T", s)
			}
		})
	}
}

func TestNewWebhookSMSSenderURL(t *testing.T) {
	t.Parallel()
	bad := []string{
		"https://sms.bank.example/hook?secret=s3cr3t",
		"webhook+ftp://sms.bank.example/hook?secret=s3cr3t",
		"webhook+https://sms.bank.example/hook",
		"webhook+https://sms.bank.example/hook?secret=",
		"webhook+https:///hook?secret=s3cr3t",
		"webhook+https://user:pw@sms.bank.example/hook?secret=s3cr3t",
		"webhook+https://sms.bank.example/hook?secret=s3cr3t&secret=other",
		"webhook+https://sms.bank.example/hook?secret=s3cr3t%zz",
	}
	for _, raw := range bad {
		t.Run(raw, func(t *testing.T) {
			t.Parallel()
			_, err := delivery.NewWebhookSMSSender(raw, nil, nil)
			if err == nil {
				t.Fatal("NewWebhookSMSSender: want error, got nil")
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error %q leaks the secret", err)
			}
		})
	}
}

// webhookReceiver is what an institution would run: it verifies every
// request with VerifyWebhook and records the accepted ones.
type webhookReceiver struct {
	srv    *httptest.Server
	secret []byte
	now    time.Time

	mu       sync.Mutex
	status   int // answer with this instead of 200 when set
	rawQuery []string
	got      []map[string]string
	verdicts []error
}

func newWebhookReceiver(t *testing.T, secret string, now time.Time) *webhookReceiver {
	t.Helper()
	wr := &webhookReceiver{secret: []byte(secret), now: now}
	wr.srv = httptest.NewServer(http.HandlerFunc(wr.serve))
	t.Cleanup(wr.srv.Close)
	return wr
}

func (wr *webhookReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	err := delivery.VerifyWebhook(wr.secret, r.Header.Get("X-Resetd-Timestamp"), r.Header.Get("X-Resetd-Signature"), body, wr.now, 5*time.Minute)
	wr.mu.Lock()
	defer wr.mu.Unlock()
	wr.verdicts = append(wr.verdicts, err)
	wr.rawQuery = append(wr.rawQuery, r.URL.RawQuery)
	if err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"code":"bad_signature","message":"signature check failed"}`)
		return
	}
	var m map[string]string
	_ = json.Unmarshal(body, &m)
	wr.got = append(wr.got, m)
	if wr.status != 0 {
		w.WriteHeader(wr.status)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func (wr *webhookReceiver) url(secret string) string {
	return "webhook+http://" + strings.TrimPrefix(wr.srv.URL, "http://") + "/sms?tenant=demo&secret=" + secret
}

func TestWebhookSMSSender(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	// A '+' in the secret is literal, like '+' in a phone number.
	const secret = "whsec_a+b/c="

	tests := []struct {
		name          string
		urlSecret     string
		senderClock   func() time.Time
		status        int
		wantErr       bool
		wantPermanent bool
		wantVerdict   error
	}{
		{name: "accepted", urlSecret: secret, senderClock: clock},
		{name: "accepted within the window", urlSecret: secret, senderClock: func() time.Time { return now.Add(-4 * time.Minute) }},
		{name: "wrong secret", urlSecret: "whsec_other", senderClock: clock, wantErr: true, wantPermanent: true, wantVerdict: delivery.ErrWebhookSignature},
		{name: "stale clock", urlSecret: secret, senderClock: func() time.Time { return now.Add(-6 * time.Minute) }, wantErr: true, wantPermanent: true, wantVerdict: delivery.ErrWebhookTimestamp},
		{name: "receiver down for a moment", urlSecret: secret, senderClock: clock, status: 503, wantErr: true},
		{name: "receiver throttles", urlSecret: secret, senderClock: clock, status: 429, wantErr: true},
		{name: "receiver rejects", urlSecret: secret, senderClock: clock, status: 422, wantErr: true, wantPermanent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			wr := newWebhookReceiver(t, secret, now)
			wr.status = tc.status
			s, err := delivery.NewWebhookSMSSender(wr.url(tc.urlSecret), nil, tc.senderClock)
			if err != nil {
				t.Fatalf("NewWebhookSMSSender: %v", err)
			}
			err = s.Send(testCtx(t), delivery.Message{Channel: delivery.ChannelSMS, To: testTo, Text: testSMSBody})
			if tc.wantErr != (err != nil) {
				t.Fatalf("Send = %v, want error: %v", err, tc.wantErr)
			}
			if got := delivery.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.wantPermanent)
			}
			if err != nil && strings.Contains(err.Error(), "987654") {
				t.Errorf("error %q leaks the body", err)
			}

			wr.mu.Lock()
			defer wr.mu.Unlock()
			if len(wr.verdicts) != 1 {
				t.Fatalf("receiver saw %d requests, want 1", len(wr.verdicts))
			}
			if !errors.Is(wr.verdicts[0], tc.wantVerdict) {
				t.Errorf("VerifyWebhook = %v, want %v", wr.verdicts[0], tc.wantVerdict)
			}
			if wr.rawQuery[0] != "tenant=demo" {
				t.Errorf("target query = %q, want the secret removed and the rest kept", wr.rawQuery[0])
			}
			if tc.wantVerdict == nil {
				m := wr.got[0]
				if m["to"] != testTo || m["body"] != testSMSBody || m["messageId"] == "" {
					t.Errorf("receiver got %v", m)
				}
			}
		})
	}
}

func TestSignWebhookVector(t *testing.T) {
	t.Parallel()
	// Computed independently (Python hmac), so a receiver in any language
	// can check its implementation against it.
	body := []byte(`{"to":"+15550001111","body":"hi","messageId":"m1"}`)
	const want = "v1=61af2ac8a9276ea97fb76a0b398bfcac296f1cfba63c83fa0b94b7749287cce6"
	if got := delivery.SignWebhook([]byte("whsec_test"), 1_700_000_000, body); got != want {
		t.Errorf("SignWebhook = %s, want %s", got, want)
	}
}

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec_test")
	now := time.Unix(1_700_000_000, 0)
	body := []byte(`{"to":"+15550001111","body":"Demo Bank code: 123456","messageId":"m1"}`)
	ts := now.Unix()
	sig := delivery.SignWebhook(secret, ts, body)
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }

	tests := []struct {
		name   string
		secret []byte
		ts     string
		sig    string
		body   []byte
		window time.Duration
		want   error
	}{
		{name: "valid", secret: secret, ts: itoa(ts), sig: sig, body: body},
		{name: "valid, default window", secret: secret, ts: itoa(ts - 240), sig: delivery.SignWebhook(secret, ts-240, body), body: body, window: -1},
		{name: "rotation: second signature matches", secret: secret, ts: itoa(ts), sig: delivery.SignWebhook([]byte("old"), ts, body) + ", " + sig, body: body},
		{name: "tampered body", secret: secret, ts: itoa(ts), sig: sig, body: []byte(strings.Replace(string(body), "123456", "000000", 1)), want: delivery.ErrWebhookSignature},
		{name: "wrong secret", secret: []byte("whsec_other"), ts: itoa(ts), sig: sig, body: body, want: delivery.ErrWebhookSignature},
		{name: "timestamp changed after signing", secret: secret, ts: itoa(ts + 1), sig: sig, body: body, want: delivery.ErrWebhookSignature},
		{name: "old timestamp", secret: secret, ts: itoa(ts - 301), sig: delivery.SignWebhook(secret, ts-301, body), body: body, want: delivery.ErrWebhookTimestamp},
		{name: "future timestamp", secret: secret, ts: itoa(ts + 301), sig: delivery.SignWebhook(secret, ts+301, body), body: body, want: delivery.ErrWebhookTimestamp},
		{name: "missing timestamp", secret: secret, ts: "", sig: sig, body: body, want: delivery.ErrWebhookTimestamp},
		{name: "garbage timestamp", secret: secret, ts: "yesterday", sig: sig, body: body, want: delivery.ErrWebhookTimestamp},
		{name: "missing signature", secret: secret, ts: itoa(ts), sig: "", body: body, want: delivery.ErrWebhookSignature},
		{name: "unversioned signature", secret: secret, ts: itoa(ts), sig: strings.TrimPrefix(sig, "v1="), body: body, want: delivery.ErrWebhookSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			window := 5 * time.Minute
			if tc.window != 0 {
				window = tc.window
			}
			err := delivery.VerifyWebhook(tc.secret, tc.ts, tc.sig, tc.body, now, window)
			if !errors.Is(err, tc.want) {
				t.Errorf("VerifyWebhook = %v, want %v", err, tc.want)
			}
		})
	}
}
