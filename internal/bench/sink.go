package bench

import (
	"bytes"
	"encoding/base64"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// sink is a real SMTP server on loopback that accepts every message and
// measures delivery lag: the time from the HTTP answer that accepted a
// send (recorded with expect) to the end of the message's DATA. It parses
// bodies only when asked to (capture), so that the load generator spends
// its CPU on requests, not on MIME.
type sink struct {
	srv  *smtp.Server
	ln   net.Listener
	done chan struct{}

	mu       sync.Mutex
	pending  map[string][]time.Time // recipient → accept times not yet matched
	early    map[string][]time.Time // recipient → arrivals before their accept was recorded
	lags     []time.Duration
	received int
	capture  map[string]chan string // recipient → captured secret (link token or code)
	capRE    *regexp.Regexp
	arrived  chan struct{} // signalled (non-blocking) on each message
	// ignore, when set, names recipients whose messages are counted but
	// never matched (a bulk's, which nobody expects one by one).
	ignore  func(rcpt string) bool
	ignored int
}

// ignoredCount is how many messages went to ignored recipients.
func (s *sink) ignoredCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ignored
}

func newSink(listen string) (*sink, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	s := &sink{ln: ln, done: make(chan struct{}), pending: map[string][]time.Time{}, early: map[string][]time.Time{},
		capture: map[string]chan string{}, arrived: make(chan struct{}, 1)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &sinkSession{s: s}, nil }))
	srv.Domain = "bench.localhost"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 1 << 20
	srv.MaxRecipients = 10
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.ErrorLog = log.New(io.Discard, "", 0)
	s.srv = srv
	go func() {
		defer close(s.done)
		_ = srv.Serve(ln)
	}()
	return s, nil
}

func (s *sink) addr() string { return s.ln.Addr().String() }

func (s *sink) url() string { return "smtp://" + s.addr() + "?tls=none&from=bench@resetd.invalid" }

func (s *sink) close() {
	_ = s.srv.Close()
	// Close only closes listeners Serve has registered, which it may not
	// have done yet when a run fails early.
	_ = s.ln.Close()
	<-s.done
}

// expect records that a message to rcpt was accepted at t.
func (s *sink) expect(rcpt string, t time.Time) {
	rcpt = strings.ToLower(rcpt)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.early[rcpt]; len(e) > 0 {
		s.lags = append(s.lags, max(e[0].Sub(t), 0))
		if len(e) == 1 {
			delete(s.early, rcpt)
		} else {
			s.early[rcpt] = e[1:]
		}
		return
	}
	s.pending[rcpt] = append(s.pending[rcpt], t)
}

// setCapture makes the sink extract secrets with re (first submatch) from
// messages to the given recipients; nil re turns capture off.
func (s *sink) setCapture(re *regexp.Regexp) {
	s.mu.Lock()
	s.capRE = re
	s.mu.Unlock()
}

// want returns a channel that receives the next secret captured for rcpt.
func (s *sink) want(rcpt string) <-chan string {
	rcpt = strings.ToLower(rcpt)
	s.mu.Lock()
	defer s.mu.Unlock()
	ch, ok := s.capture[rcpt]
	if !ok {
		ch = make(chan string, 4)
		s.capture[rcpt] = ch
	}
	return ch
}

// resetStats forgets lags and unmatched expectations (between flows).
func (s *sink) resetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = map[string][]time.Time{}
	s.early = map[string][]time.Time{}
	s.lags = nil
	s.received = 0
}

// stats returns the lags measured, how many accepted messages have not
// arrived yet, and how many messages arrived in all.
func (s *sink) stats() (lags []time.Duration, outstanding, received int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.pending {
		outstanding += len(p)
	}
	return append([]time.Duration(nil), s.lags...), outstanding, s.received
}

func (s *sink) deliver(to []string, data []byte, at time.Time) {
	s.mu.Lock()
	s.received++
	re := s.capRE
	var chans []chan string
	for _, rcpt := range to {
		rcpt = strings.ToLower(rcpt)
		if s.ignore != nil && s.ignore(rcpt) {
			s.ignored++
			continue
		}
		if p := s.pending[rcpt]; len(p) > 0 {
			s.lags = append(s.lags, max(at.Sub(p[0]), 0))
			if len(p) == 1 {
				delete(s.pending, rcpt)
			} else {
				s.pending[rcpt] = p[1:]
			}
		} else {
			s.early[rcpt] = append(s.early[rcpt], at)
		}
		if ch, ok := s.capture[rcpt]; ok && re != nil {
			chans = append(chans, ch)
		}
	}
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	if len(chans) == 0 {
		return
	}
	if m := re.FindStringSubmatch(messageText(data)); m != nil {
		for _, ch := range chans {
			select {
			case ch <- m[1]:
			default:
			}
		}
	}
}

type sinkSession struct {
	s  *sink
	to []string
}

func (se *sinkSession) Mail(string, *smtp.MailOptions) error { return nil }

func (se *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	se.s.deliver(se.to, data, time.Now())
	return nil
}

func (se *sinkSession) Reset()        { se.to = nil }
func (se *sinkSession) Logout() error { return nil }

// messageText returns the decoded text/plain part of a message (or the
// raw bytes when it does not parse).
func messageText(data []byte) string {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return string(data)
	}
	if t, ok := textPart(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body); ok {
		return t
	}
	return string(data)
}

func textPart(contentType, encoding string, body io.Reader) (string, bool) {
	if contentType == "" {
		contentType = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", false
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				return "", false
			}
			if t, ok := textPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); ok {
				return t, true
			}
		}
	}
	if mt != "text/plain" {
		return "", false
	}
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return "", false
	}
	return string(b), true
}
