package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/resetd/resetd/internal/i18n"
	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

const (
	// smtpTimeout bounds dialing and every SMTP command; a relay that takes
	// longer is treated as down and the job retries later.
	smtpTimeout = 10 * time.Second
	// smtpMaxIdle is how many connected sessions we keep between sends: as
	// many as may be open, so a burst does not close sessions only to dial
	// them again (a TCP connect, the greeting and EHLO, STARTTLS).
	smtpMaxIdle = smtpMaxOpen
	// smtpMaxOpen bounds concurrent sessions: relays limit connections per
	// client (Postfix allows 50 by default) and answer 421 beyond that, and
	// a burst of jobs should queue here rather than there.
	smtpMaxOpen = 16
	// smtpIdleTimeout is shorter than smtpTimeout on purpose: go-mail sets
	// the connection deadline to smtpTimeout after each command, so a session
	// idle for longer would fail its next command anyway.
	smtpIdleTimeout = 5 * time.Second
)

// SMTPSender sends email with github.com/wneessen/go-mail, reusing a small
// pool of connected SMTP sessions so that a burst of sends does not pay for a
// TCP (and TLS) handshake per message.
//
// It is safe for concurrent use.
type SMTPSender struct {
	// client holds the dial and auth configuration. Sessions come from
	// DialToSMTPClientWithContext and are used with SendWithSMTPClient,
	// which only read the Client, so one Client serves all sessions.
	client *gomail.Client
	addr   string // host:port, IPv6-safe
	from   string
	idle   chan idleSession
	slots  chan struct{} // one per session in use, at most smtpMaxOpen

	mu     sync.Mutex // guards closed and sending into idle
	closed bool
}

type idleSession struct {
	c     *smtp.Client
	since time.Time
}

// NewSMTPSender parses a URL of the form
//
//	smtp://user:pass@host:port?tls=none|starttls|implicit&from=addr
//	smtps://user:pass@host:port?from=addr   (same as tls=implicit)
//
// Credentials are optional (no credentials: no SMTP AUTH). tls defaults to
// starttls; the port defaults to 587 for starttls and none, 465 for implicit.
// from is the default sender; it may be omitted when every message carries
// its own From. A '+' in the query is a literal plus.
//
// With tls=none, credentials are accepted only for localhost, 127.0.0.1 or
// ::1: a password must not cross a network in clear text.
func NewSMTPSender(rawURL string) (*SMTPSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the whole URL, password included.
		return nil, fmt.Errorf("delivery: smtp url: %w", unwrapURLError(err))
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, errors.New("delivery: smtp url: want smtp://[user:pass@]host[:port][?tls=...&from=...]")
	}
	query, err := parseRawQuery(u.RawQuery, "tls", "from")
	if err != nil {
		return nil, fmt.Errorf("delivery: smtp url: %w", err)
	}

	tlsMode, hasTLS := query["tls"]
	switch u.Scheme {
	case "smtp":
		if !hasTLS {
			tlsMode = "starttls"
		}
	case "smtps":
		if hasTLS && tlsMode != "implicit" {
			return nil, fmt.Errorf("delivery: smtp url: scheme smtps conflicts with tls=%s", tlsMode)
		}
		tlsMode = "implicit"
	default:
		return nil, fmt.Errorf("delivery: smtp url: unsupported scheme %q (want smtp or smtps)", u.Scheme)
	}

	host := u.Hostname()
	if host == "" {
		return nil, errors.New("delivery: smtp url: missing host")
	}
	// Neither NOOP before each message nor RSET after it: each is a round
	// trip per message, an SMTP transaction is over once its DATA is
	// accepted (RFC 5321 §4.1.1.4, the session is ready for the next MAIL),
	// and go-mail reports a failed RSET after an accepted message as a
	// failed send, which would make the job send it twice. A pooled session
	// the server dropped fails at MAIL FROM instead, before anything is
	// sent, and Send tries another (isStaleSession).
	opts := []gomail.Option{gomail.WithTimeout(smtpTimeout), gomail.WithoutNoop(), gomail.WithoutRset()}
	port := gomail.DefaultPortTLS
	switch tlsMode {
	case "starttls":
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case "implicit":
		opts = append(opts, gomail.WithSSL())
		port = gomail.DefaultPortSSL
	default:
		return nil, fmt.Errorf("delivery: smtp url: unknown tls mode %q (want none, starttls or implicit)", tlsMode)
	}
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("delivery: smtp url: invalid port %q", p)
		}
	}
	opts = append(opts, gomail.WithPort(port))
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if tlsMode == "implicit" {
		// go-mail joins host and port with a plain ':'; only its own dialer
		// knows the connection is TLS from the start, so we cannot
		// substitute ours here.
		if strings.Contains(host, ":") {
			return nil, errors.New("delivery: smtp url: implicit TLS needs a host name, not an IPv6 address")
		}
	} else {
		// Our own dialer, because go-mail builds "::1:587" for IPv6 hosts.
		var dialer net.Dialer
		opts = append(opts, gomail.WithDialContextFunc(func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		}))
	}

	if user := u.User.Username(); user != "" {
		pass, _ := u.User.Password()
		authType := gomail.SMTPAuthAutoDiscover
		if tlsMode == "none" && host != "localhost" && host != "127.0.0.1" && host != "::1" {
			// go-mail would refuse at send time; say so at startup instead.
			return nil, errors.New("delivery: smtp url: credentials with tls=none are only sent to localhost; use tls=starttls or tls=implicit")
		}
		if tlsMode == "none" {
			// Auto-discovery never picks PLAIN on a clear-text connection,
			// which is exactly the loopback relay case tls=none is for.
			authType = gomail.SMTPAuthPlain
		}
		opts = append(opts, gomail.WithSMTPAuth(authType), gomail.WithUsername(user), gomail.WithPassword(pass))
	}

	from := query["from"]
	if from != "" {
		if _, err := mail.ParseAddress(from); err != nil {
			return nil, fmt.Errorf("delivery: smtp url: invalid from address: %w", err)
		}
	}

	client, err := gomail.NewClient(host, opts...)
	if err != nil {
		return nil, fmt.Errorf("delivery: smtp client: %w", err)
	}
	return &SMTPSender{
		client: client,
		addr:   addr,
		from:   from,
		idle:   make(chan idleSession, smtpMaxIdle),
		slots:  make(chan struct{}, smtpMaxOpen),
	}, nil
}

// Check connects as a send would (EHLO, STARTTLS unless tls=none, AUTH
// when the URL has credentials) and says goodbye without sending
// anything: resetd doctor's SMTP check.
func (s *SMTPSender) Check(ctx context.Context) error {
	c, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return fmt.Errorf("delivery: smtp check %s: %w", s.addr, err)
	}
	return s.client.CloseWithSMTPClient(c)
}

// From returns the default sender address from the URL (possibly empty).
func (s *SMTPSender) From() string { return s.from }

// Send delivers m. SMTP 5xx replies (refused recipient, failed auth, rejected
// content) come back marked Permanent; 4xx replies, refused connections and
// timeouts come back as plain errors for the job to retry.
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delivery: smtp send: %w", err)
	}
	msg, err := s.buildMsg(m)
	if err != nil {
		return Permanent(err)
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	case <-ctx.Done():
		return fmt.Errorf("delivery: smtp send: %w", ctx.Err())
	}

	// A pooled session may have been dropped by the server while idle. That
	// shows up as a failed MAIL FROM, before anything is sent, so it is
	// safe to try again on another session; the bound keeps a dead pool
	// from looping when other goroutines keep refilling it.
	for attempt := 0; attempt <= smtpMaxIdle; attempt++ {
		c, reused, err := s.session(ctx)
		if err != nil {
			return classifySMTP(fmt.Errorf("delivery: smtp connect: %w", err))
		}
		// go-mail's send has no context; closing the connection is the only
		// way to make a cancelled job stop waiting on the server.
		// Text.Close, unlike Client.Close, does not wait for the mutex that a
		// blocked command holds.
		stop := context.AfterFunc(ctx, func() { _ = c.Text.Close() })
		err = s.client.SendWithSMTPClient(c, msg)
		stopped := stop()
		if err == nil {
			// Delivered, even if ctx ended just now: reporting an error
			// would make the job send the email twice.
			if stopped {
				s.release(c)
			}
			return nil
		}
		if !stopped {
			return fmt.Errorf("delivery: smtp send: %w", errors.Join(ctx.Err(), err))
		}
		// After a failure the session's state is uncertain (go-mail does not
		// RSET after every failure path); a new one is cheap.
		_ = c.Close()
		if reused && isStaleSession(err) {
			continue
		}
		return classifySMTP(fmt.Errorf("delivery: smtp send: %w", err))
	}
	return errors.New("delivery: smtp send: no usable connection to the server")
}

// Close closes the idle sessions. Sessions in use by a Send are closed when
// that Send returns.
func (s *SMTPSender) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	var errs []error
	for {
		select {
		case is := <-s.idle:
			// A session idle past its deadline cannot say QUIT any more.
			if time.Since(is.since) > smtpIdleTimeout {
				_ = is.c.Close()
				continue
			}
			if err := s.client.CloseWithSMTPClient(is.c); err != nil {
				errs = append(errs, err)
			}
		default:
			if err := errors.Join(errs...); err != nil {
				return fmt.Errorf("delivery: smtp close: %w", err)
			}
			return nil
		}
	}
}

func (s *SMTPSender) buildMsg(m Message) (*gomail.Msg, error) {
	if m.Channel != "" && m.Channel != ChannelEmail {
		return nil, fmt.Errorf("delivery: smtp: cannot send a %q message", m.Channel)
	}
	if m.Text == "" && m.HTML == "" {
		return nil, errors.New("delivery: smtp: empty message body")
	}
	from := m.From
	if from == "" {
		from = s.from
	}
	if from == "" {
		return nil, errors.New("delivery: smtp: no from address (set from= in the SMTP URL or Message.From)")
	}
	fromAddr, err := mail.ParseAddress(from)
	if err != nil {
		return nil, fmt.Errorf("delivery: smtp: invalid from address: %w", err)
	}
	if fromAddr.Name == "" {
		fromAddr.Name = strings.Join(strings.Fields(m.FromName), " ")
	}

	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(fromAddr)
	// RFC 3834: an automatic message; vacation responders must not answer it.
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	// RFC 3282: the language the message is written in.
	if lang, err := i18n.Canonical(m.Language); err == nil {
		msg.SetGenHeader(gomail.HeaderContentLang, lang)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("delivery: smtp: invalid recipient: %w", err)
	}
	// Header values are encoded by go-mail, but a subject is one line by
	// definition; folding it here keeps a template mistake from producing
	// an odd-looking header.
	msg.Subject(strings.Join(strings.Fields(m.Subject), " "))
	// A Message-ID in the sender's own domain reads better to spam filters
	// than one naming whatever container we happen to run in.
	msg.SetMessageIDWithValue(uuid.NewString() + "@" + addrDomain(fromAddr.Address))
	msg.SetDate()
	switch {
	case m.HTML == "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	case m.Text == "":
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}

// session returns an idle session if there is a fresh one, or dials.
func (s *SMTPSender) session(ctx context.Context) (c *smtp.Client, reused bool, err error) {
	for {
		select {
		case is := <-s.idle:
			if time.Since(is.since) > smtpIdleTimeout {
				_ = is.c.Close()
				continue
			}
			return is.c, true, nil
		default:
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			return nil, false, errors.New("sender is closed")
		}
		c, err := s.client.DialToSMTPClientWithContext(ctx)
		return c, false, err
	}
}

// release parks a healthy session for the next Send, or says goodbye to it
// when the pool is full or closed.
func (s *SMTPSender) release(c *smtp.Client) {
	s.mu.Lock()
	if !s.closed {
		select {
		case s.idle <- idleSession{c: c, since: time.Now()}:
			s.mu.Unlock()
			return
		default:
		}
	}
	s.mu.Unlock()
	_ = s.client.CloseWithSMTPClient(c)
}

// isStaleSession reports a session that failed before its message's
// transaction began: the connection check, or MAIL FROM without a reply
// (the connection was gone) or with 421 (the server is closing it).
// Nothing of the message was sent then.
func isStaleSession(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case gomail.ErrConnCheck:
		return true
	case gomail.ErrSMTPMailFrom:
		code := smtpReplyCode(err)
		return code == 0 || code == 421
	}
	return false
}

// classifySMTP marks err Permanent when the server answered with a 5xx reply.
// Everything else (4xx, network errors, timeouts) is left retryable.
func classifySMTP(err error) error {
	if code := smtpReplyCode(err); code >= 500 && code < 600 {
		return Permanent(err)
	}
	return err
}

func smtpReplyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	// SendError does not unwrap to the server reply, but records its code.
	var se *gomail.SendError
	if errors.As(err, &se) {
		return se.ErrorCode()
	}
	return 0
}

func addrDomain(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 && i < len(addr)-1 {
		return addr[i+1:]
	}
	return "localhost"
}

// unwrapURLError drops url.Error's copy of the URL, which would put
// credentials (SMTP password, Twilio token, webhook secret) into logs.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseRawQuery parses a URL query by hand because url.ParseQuery turns '+'
// into a space, and our URLs carry E.164 numbers and plus-addressed email.
// Only the allowed keys are accepted, each at most once, so a typo such as
// "tsl=none" fails loudly instead of silently using the default.
func parseRawQuery(raw string, allowed ...string) (map[string]string, error) {
	out := make(map[string]string)
	if raw == "" {
		return out, nil
	}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.PathUnescape(k)
		if err != nil {
			return nil, errors.New("invalid percent-encoding in a query key")
		}
		// The value may be a secret: the error names the key only.
		val, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("invalid percent-encoding in %q", key)
		}
		if !slices.Contains(allowed, key) {
			return nil, fmt.Errorf("unknown parameter %q", key)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("parameter %q given twice", key)
		}
		out[key] = val
	}
	return out, nil
}

var _ Sender = (*SMTPSender)(nil)
