package mailtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mail is a message the Server accepted.
type Mail struct {
	From string   // envelope sender (MAIL FROM)
	To   []string // envelope recipients (RCPT TO)
	Data []byte   // the message as received
	// Subject is decoded from RFC 2047; Text and HTML are the decoded
	// text/plain and text/html parts with CRLF turned into LF, so a test
	// can search them for a link.
	Subject, Text, HTML string
	// Header is the parsed top-level header (Message-ID, Date, From...).
	Header mail.Header
}

// Server is a real SMTP server on 127.0.0.1 recording every accepted
// message. It requires no authentication but accepts AUTH PLAIN with any
// credentials, without TLS, if the client offers them.
type Server struct {
	t    testing.TB
	addr string
	rec  *recorder[Mail]

	mu   sync.Mutex // guards srv, ln and done
	srv  *smtp.Server
	ln   net.Listener
	done chan struct{} // closed when the running Serve returns

	holdMu  sync.Mutex // guards holds, held and release
	holds   int
	held    chan string
	release chan struct{}
}

// NewServer starts a Server on 127.0.0.1 with a random port; it is closed
// when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mailtest: listen: %v", err)
	}
	s := &Server{t: t, addr: l.Addr().String(), rec: newRecorder[Mail]()}
	s.serve(l)
	t.Cleanup(s.Stop)
	return s
}

// Addr returns host:port.
func (s *Server) Addr() string { return s.addr }

// URL returns an SMTP URL for delivery.NewSMTPSender with TLS off and from
// as the default sender.
func (s *Server) URL(from string) string {
	return "smtp://" + s.addr + "?tls=none&from=" + queryValue(from)
}

// Wait blocks until at least n messages have arrived or ctx ends, and
// returns every message received so far.
func (s *Server) Wait(ctx context.Context, n int) ([]Mail, error) { return s.rec.wait(ctx, n) }

// Messages returns the messages received so far.
func (s *Server) Messages() []Mail { return s.rec.all() }

// Count returns how many messages were received.
func (s *Server) Count() int { return s.rec.count() }

// FailNext makes the next n messages fail at the end of DATA with the given
// SMTP reply code (e.g. 451 temporary, 550 permanent). It replaces any
// failures still pending.
func (s *Server) FailNext(n int, code int) { s.rec.failNext(n, code) }

// HoldNext makes the next n messages stall at the end of DATA, unanswered,
// as a relay that hangs in the middle of a send: the sender waits for a
// reply that does not come. The first recipient of each held message is
// sent on the returned channel when it is held. Release (or Stop) ends
// the stall with a 451 reply; a held message is never recorded.
func (s *Server) HoldNext(n int) <-chan string {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	s.holds, s.held, s.release = n, make(chan string, n), make(chan struct{})
	return s.held
}

// Release ends every stall HoldNext started; messages not yet held are no
// longer held either.
func (s *Server) Release() {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	s.holds = 0
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
}

// takeHold says whether the message to to is held, and until when.
func (s *Server) takeHold(to []string) (<-chan struct{}, bool) {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	if s.holds <= 0 || s.release == nil {
		return nil, false
	}
	s.holds--
	first := ""
	if len(to) > 0 {
		first = to[0]
	}
	s.held <- first // buffered for every hold
	return s.release, true
}

// Stop closes the listener and every open connection, as if the SMTP
// server went down. It is safe to call more than once.
func (s *Server) Stop() {
	s.Release()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	_ = s.srv.Close()
	// srv.Close only closes listeners Serve has registered, which it may
	// not have done yet if Stop follows Start closely.
	_ = s.ln.Close()
	<-s.done
	s.srv, s.ln, s.done = nil, nil, nil
}

// Start restarts a stopped Server on the same address. Call it from the
// test goroutine: it fails the test if the address cannot be taken again.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	running := s.srv != nil
	s.mu.Unlock()
	if running {
		return
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("mailtest: listen again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

func (s *Server) serve(l net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{s: s}, nil
	}))
	srv.Domain = "mailtest.localhost"
	srv.AllowInsecureAuth = true
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 100
	// Clients closing idle pooled connections at the end of a test are not
	// worth a line on stderr.
	srv.ErrorLog = log.New(io.Discard, "", 0)

	done := make(chan struct{})
	s.mu.Lock()
	s.srv, s.ln, s.done = srv, l, done
	s.mu.Unlock()
	// The goroutine ends when Stop closes srv, and Stop waits for it.
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
}

type session struct {
	s    *Server
	from string
	to   []string
}

func (se *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (se *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error { return nil }), nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if release, ok := se.s.takeHold(se.to); ok {
		<-release
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCodeNotSet, Message: "mailtest: held, then dropped"}
	}
	if code, ok := se.s.rec.takeFailure(); ok {
		return &smtp.SMTPError{
			Code:         code,
			EnhancedCode: smtp.EnhancedCodeNotSet,
			Message:      "mailtest: injected failure",
		}
	}
	m := parseMail(data)
	m.From = se.from
	m.To = append([]string(nil), se.to...)
	se.s.rec.add(m)
	return nil
}

func (se *session) Reset() {
	se.from, se.to = "", nil
}

func (se *session) Logout() error { return nil }

// parseMail fills Data, Header, Subject, Text and HTML. A message that does
// not parse is still recorded, with Data only, so the test can look at it.
func parseMail(data []byte) Mail {
	m := Mail{Data: data}
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return m
	}
	m.Header = msg.Header
	dec := new(mime.WordDecoder)
	if subj, err := dec.DecodeHeader(msg.Header.Get("Subject")); err == nil {
		m.Subject = subj
	} else {
		m.Subject = msg.Header.Get("Subject")
	}
	walkPart(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, &m)
	m.Text = strings.ReplaceAll(m.Text, "\r\n", "\n")
	m.HTML = strings.ReplaceAll(m.HTML, "\r\n", "\n")
	return m
}

// walkPart keeps the first text/plain and text/html bodies, descending into
// multipart/* containers.
func walkPart(contentType, encoding string, body io.Reader, m *Mail) {
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextPart decodes quoted-printable itself and drops the header.
			p, err := mr.NextPart()
			if err != nil {
				return
			}
			walkPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, m)
		}
	}
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return
	}
	switch mediaType {
	case "text/plain":
		if m.Text == "" {
			m.Text = string(b)
		}
	case "text/html":
		if m.HTML == "" {
			m.HTML = string(b)
		}
	}
}
