package mailtest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// SMS is a message the Twilio fake accepted.
type SMS struct{ To, From, Body string }

// Twilio is an httptest server speaking the request shape of Twilio's
// Messages API: POST /2010-04-01/Accounts/{SID}/Messages.json with the form
// fields To, From and Body and HTTP Basic SID:TOKEN. It answers like Twilio:
// 201 with a message resource, or an error document with a Twilio code.
type Twilio struct {
	sid, token string
	srv        *httptest.Server
	rec        *recorder[SMS]

	mu             sync.Mutex
	user, password string
	sawAuth        bool
}

// NewTwilio starts a Twilio fake for the given account; it is closed when
// the test ends.
func NewTwilio(t testing.TB, sid, token string) *Twilio {
	t.Helper()
	tw := &Twilio{sid: sid, token: token, rec: newRecorder[SMS]()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", tw.create)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	})
	tw.srv = httptest.NewServer(mux)
	t.Cleanup(tw.srv.Close)
	return tw
}

// URL returns a twilio:// URL for delivery.NewTwilioSender pointing at the
// fake over plain HTTP, with from as the sender number ('+' kept literal).
func (tw *Twilio) URL(from string) string {
	host := strings.TrimPrefix(tw.srv.URL, "http://")
	return "twilio://" + tw.sid + ":" + tw.token + "@" + host + "?from=" + queryValue(from) + "&scheme=http"
}

// Wait blocks until at least n messages were accepted or ctx ends, and
// returns every message accepted so far.
func (tw *Twilio) Wait(ctx context.Context, n int) ([]SMS, error) { return tw.rec.wait(ctx, n) }

// Messages returns the messages accepted so far.
func (tw *Twilio) Messages() []SMS { return tw.rec.all() }

// Count returns how many messages were accepted.
func (tw *Twilio) Count() int { return tw.rec.count() }

// FailNext makes the next n well-formed requests fail with the given HTTP
// status (e.g. 400, 429, 503) and a Twilio error document. It replaces any
// failures still pending.
func (tw *Twilio) FailNext(n int, status int) { tw.rec.failNext(n, status) }

// BasicAuth returns the credentials of the last request that carried any,
// right or wrong.
func (tw *Twilio) BasicAuth() (user, password string, ok bool) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return tw.user, tw.password, tw.sawAuth
}

func (tw *Twilio) create(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	if ok {
		tw.mu.Lock()
		tw.user, tw.password, tw.sawAuth = user, pass, true
		tw.mu.Unlock()
	}
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(tw.sid)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(tw.token)) != 1 {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if r.PathValue("sid") != tw.sid {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if err := r.ParseForm(); err != nil {
		twilioError(w, http.StatusBadRequest, 21600, "could not parse form: "+err.Error())
		return
	}
	sms := SMS{To: r.PostForm.Get("To"), From: r.PostForm.Get("From"), Body: r.PostForm.Get("Body")}
	switch {
	case sms.To == "":
		twilioError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
		return
	case sms.From == "":
		twilioError(w, http.StatusBadRequest, 21603, "A 'From' phone number is required.")
		return
	case sms.Body == "":
		twilioError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	}
	if status, fail := tw.rec.takeFailure(); fail {
		// Twilio's own codes for HTTP-level errors are 20000+status
		// (20404, 20429, 20500); 400 is most often a bad number.
		code, msg := 20000+status, http.StatusText(status)
		if status == http.StatusBadRequest {
			code, msg = 21211, "Invalid 'To' Phone Number: "+sms.To
		}
		twilioError(w, status, code, msg)
		return
	}
	n := tw.rec.add(sms)
	msgSID := fmt.Sprintf("SM%032x", n)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid":          msgSID,
		"account_sid":  tw.sid,
		"to":           sms.To,
		"from":         sms.From,
		"body":         sms.Body,
		"status":       "queued",
		"num_segments": "1",
		"direction":    "outbound-api",
		"api_version":  "2010-04-01",
		"uri":          "/2010-04-01/Accounts/" + tw.sid + "/Messages/" + msgSID + ".json",
	})
}

func twilioError(w http.ResponseWriter, status, code int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"code":      code,
		"message":   message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
}
