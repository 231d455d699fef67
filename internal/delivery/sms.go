package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

const (
	smsTimeout = 10 * time.Second
	// smsMaxResponse caps how much of a carrier's reply we read: enough for
	// any error document, not enough for a misbehaving endpoint to hurt us.
	smsMaxResponse = 64 << 10
	// defaultWebhookWindow is what VerifyWebhook allows when given no window.
	defaultWebhookWindow = 5 * time.Minute
	twilioDefaultHost    = "api.twilio.com"
)

// Sentinel errors from VerifyWebhook, so a receiver can tell a stale
// delivery (clock skew, replay) from a forged one.
var (
	ErrWebhookTimestamp = errors.New("delivery: webhook timestamp missing or outside the allowed window")
	ErrWebhookSignature = errors.New("delivery: webhook signature does not match")
)

// NewSMSSender returns the SMS sender for rawURL's scheme: twilio://,
// webhook+https:// or webhook+http://.
func NewSMSSender(rawURL string, hc *http.Client) (Sender, error) {
	scheme, _, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, errors.New("delivery: sms url: missing scheme (want twilio://, webhook+https:// or webhook+http://)")
	}
	switch strings.ToLower(scheme) {
	case "twilio":
		return NewTwilioSender(rawURL, hc)
	case "webhook+https", "webhook+http":
		return NewWebhookSMSSender(rawURL, hc, nil)
	default:
		return nil, fmt.Errorf("delivery: sms url: unsupported scheme %q (want twilio, webhook+https or webhook+http)", scheme)
	}
}

// TwilioSender speaks the Twilio Messages API:
// POST {scheme}://{host}/2010-04-01/Accounts/{SID}/Messages.json with the
// form fields To, From and Body, authenticated with HTTP Basic SID:TOKEN.
type TwilioSender struct {
	hc       *http.Client
	endpoint string
	sid      string
	token    string
	from     string
}

// NewTwilioSender parses
//
//	twilio://SID:TOKEN@host:port?from=+15550001111&scheme=https|http
//
// scheme defaults to https (http is for a local fake); an empty host means
// api.twilio.com. The '+' in from is a literal plus. A nil hc means a client
// with a 10s timeout.
func NewTwilioSender(rawURL string, hc *http.Client) (*TwilioSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("delivery: twilio url: %w", unwrapURLError(err))
	}
	if u.Scheme != "twilio" {
		return nil, fmt.Errorf("delivery: twilio url: unsupported scheme %q", u.Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, errors.New("delivery: twilio url: want twilio://SID:TOKEN@host[:port]?from=...")
	}
	sid := u.User.Username()
	token, _ := u.User.Password()
	if sid == "" || token == "" {
		return nil, errors.New("delivery: twilio url: missing account SID or auth token")
	}
	query, err := parseRawQuery(u.RawQuery, "from", "scheme")
	if err != nil {
		return nil, fmt.Errorf("delivery: twilio url: %w", err)
	}
	from := query["from"]
	if from == "" {
		return nil, errors.New("delivery: twilio url: missing from")
	}
	scheme := query["scheme"]
	switch scheme {
	case "":
		scheme = "https"
	case "https", "http":
	default:
		return nil, fmt.Errorf("delivery: twilio url: scheme must be https or http, not %q", scheme)
	}
	host := u.Host
	if host == "" {
		host = twilioDefaultHost
	}
	endpoint := (&url.URL{
		Scheme: scheme,
		Host:   host,
		Path:   "/2010-04-01/Accounts/" + sid + "/Messages.json",
	}).String()
	return &TwilioSender{hc: httpClient(hc), endpoint: endpoint, sid: sid, token: token, from: from}, nil
}

// From returns the configured sender number.
func (s *TwilioSender) From() string { return s.from }

// Send posts m.Text to m.To (an E.164 number). A 2xx reply means Twilio
// accepted the message; 429, 5xx and network errors are retryable; any other
// 4xx is Permanent, with Twilio's error code and message in the error text.
func (s *TwilioSender) Send(ctx context.Context, m Message) error {
	if err := checkSMS(m); err != nil {
		return Permanent(fmt.Errorf("delivery: twilio: %w", err))
	}
	form := url.Values{"To": {m.To}, "From": {s.from}, "Body": {m.Text}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Permanent(fmt.Errorf("delivery: twilio: %w", err))
	}
	req.SetBasicAuth(s.sid, s.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	return doSMS(s.hc, req, "twilio")
}

// WebhookSMSSender hands SMS to an HTTP endpoint of the institution's own,
// signed so the receiver can tell our requests from anyone else's.
//
// Each request is a POST of {"to","body","messageId"} with the headers
// X-Resetd-Timestamp (unix seconds) and X-Resetd-Signature
// (see SignWebhook). messageId is random per attempt: Message carries no
// stable ID, and deriving one from the body would expose the OTP to brute
// force by anyone who sees the ID.
type WebhookSMSSender struct {
	hc     *http.Client
	target string
	secret []byte
	now    func() time.Time
}

// NewWebhookSMSSender parses webhook+https://host/path?secret=... (or
// webhook+http:// for a loopback receiver). The secret parameter is removed
// from the target URL; other query parameters are kept. A nil hc means a
// client with a 10s timeout, a nil now means time.Now.
func NewWebhookSMSSender(rawURL string, hc *http.Client, now func() time.Time) (*WebhookSMSSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("delivery: webhook url: %w", unwrapURLError(err))
	}
	var scheme string
	switch u.Scheme {
	case "webhook+https":
		scheme = "https"
	case "webhook+http":
		scheme = "http"
	default:
		return nil, fmt.Errorf("delivery: webhook url: unsupported scheme %q (want webhook+https or webhook+http)", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, errors.New("delivery: webhook url: missing host")
	}
	if u.User != nil {
		return nil, errors.New("delivery: webhook url: credentials in the URL are not supported; the secret parameter signs requests")
	}
	var secret string
	var found bool
	var keep []string
	for pair := range strings.SplitSeq(u.RawQuery, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if k != "secret" {
			if pair != "" {
				keep = append(keep, pair)
			}
			continue
		}
		if found {
			return nil, errors.New("delivery: webhook url: secret given twice")
		}
		found = true
		// Literal '+' like our other URLs: secrets are often base64.
		if secret, err = url.PathUnescape(v); err != nil {
			return nil, errors.New("delivery: webhook url: invalid percent-encoding in secret")
		}
	}
	if secret == "" {
		return nil, errors.New("delivery: webhook url: missing secret")
	}
	target := *u
	target.Scheme = scheme
	target.RawQuery = strings.Join(keep, "&")
	target.Fragment = ""
	if now == nil {
		now = time.Now
	}
	return &WebhookSMSSender{hc: httpClient(hc), target: target.String(), secret: []byte(secret), now: now}, nil
}

// Send posts m to the webhook. Classification matches TwilioSender: 2xx is
// accepted, 429/5xx/network errors are retryable, other 4xx are Permanent.
func (s *WebhookSMSSender) Send(ctx context.Context, m Message) error {
	if err := checkSMS(m); err != nil {
		return Permanent(fmt.Errorf("delivery: webhook: %w", err))
	}
	body, err := json.Marshal(struct {
		To        string `json:"to"`
		Body      string `json:"body"`
		MessageID string `json:"messageId"`
	}{m.To, m.Text, uuid.NewString()})
	if err != nil {
		return Permanent(fmt.Errorf("delivery: webhook: %w", err))
	}
	ts := s.now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.target, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("delivery: webhook: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Resetd-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-Resetd-Signature", SignWebhook(s.secret, ts, body))
	return doSMS(s.hc, req, "webhook")
}

// SignWebhook returns "v1=" + hex(HMAC-SHA256(secret, ts + "." + body)).
// Signing the timestamp with the body lets the receiver reject replays of an
// old request without keeping state.
func SignWebhook(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(strconv.AppendInt(nil, ts, 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifyWebhook checks a request signed by WebhookSMSSender: tsHeader is
// X-Resetd-Timestamp, sigHeader is X-Resetd-Signature. The timestamp must be
// within window of now in either direction (window <= 0 means 5 minutes).
// sigHeader may hold several comma-separated signatures so a receiver can
// accept both sides of a secret rotation; any match passes.
//
// It returns ErrWebhookTimestamp or ErrWebhookSignature.
func VerifyWebhook(secret []byte, tsHeader, sigHeader string, body []byte, now time.Time, window time.Duration) error {
	if window <= 0 {
		window = defaultWebhookWindow
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(tsHeader), 10, 64)
	if err != nil {
		return ErrWebhookTimestamp
	}
	skew := now.Sub(time.Unix(ts, 0))
	if skew > window || skew < -window {
		return ErrWebhookTimestamp
	}
	want := []byte(SignWebhook(secret, ts, body))
	for sig := range strings.SplitSeq(sigHeader, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(sig)), want) {
			return nil
		}
	}
	return ErrWebhookSignature
}

func httpClient(hc *http.Client) *http.Client {
	if hc != nil {
		return hc
	}
	return &http.Client{Timeout: smsTimeout}
}

func checkSMS(m Message) error {
	if m.Channel != "" && m.Channel != ChannelSMS {
		return fmt.Errorf("cannot send a %q message", m.Channel)
	}
	if !isE164(m.To) {
		return errors.New("recipient is not an E.164 number")
	}
	if m.Text == "" {
		return errors.New("empty message body")
	}
	return nil
}

// isE164 accepts '+' followed by 8 to 15 digits, the first not zero.
func isE164(s string) bool {
	if len(s) < 9 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// doSMS sends req and classifies the outcome. Error texts carry the status
// and the carrier's error code and message, never the SMS body.
func doSMS(hc *http.Client, req *http.Request, carrier string) error {
	resp, err := hc.Do(req)
	if err != nil {
		// Network errors and timeouts: the carrier may be back shortly.
		return fmt.Errorf("delivery: %s: %w", carrier, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, smsMaxResponse))
	// Drain what is left so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, smsMaxResponse))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = fmt.Errorf("delivery: %s: %s%s", carrier, resp.Status, carrierDetail(data))
	switch {
	case resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode >= 500:
		return err
	case resp.StatusCode >= 400:
		return Permanent(err)
	default:
		// Redirect loops and other surprises: let the job retry and
		// someone look at the logs.
		return err
	}
}

// carrierDetail extracts Twilio's (or a webhook's, if it follows the same
// shape) {"code": ..., "message": ...} from an error response.
func carrierDetail(body []byte) string {
	var doc struct {
		Code    json.RawMessage `json:"code"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(body, &doc) != nil {
		return ""
	}
	var b strings.Builder
	if code := strings.Trim(string(doc.Code), `"`); code != "" && code != "null" {
		b.WriteString(": code ")
		b.WriteString(code)
	}
	if doc.Message != "" {
		b.WriteString(": ")
		b.WriteString(truncate(doc.Message, 300))
	}
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

var (
	_ Sender = (*TwilioSender)(nil)
	_ Sender = (*WebhookSMSSender)(nil)
)
