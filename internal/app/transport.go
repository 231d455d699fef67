package app

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/resetd/resetd/internal/request"
)

// Connection limits of SPEC §15; Config can lower them (tests).
const (
	connsPerIP = 256
	connsTotal = 10000
)

// tlsFiles serves HTTPS from PEM files that can be reread (SIGHUP)
// without dropping a connection: each handshake takes the pair loaded
// last, connections already open keep theirs.
type tlsFiles struct {
	cert, key, clientCA string
	cur                 atomic.Pointer[tlsState]
}

type tlsState struct {
	cert *tls.Certificate
	cas  *x509.CertPool
}

func newTLSFiles(cert, key, clientCA string) (*tlsFiles, error) {
	if cert == "" && key == "" {
		if clientCA != "" {
			return nil, errors.New("app: --client-ca needs --tls-cert and --tls-key")
		}
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, errors.New("app: --tls-cert and --tls-key go together")
	}
	f := &tlsFiles{cert: cert, key: key, clientCA: clientCA}
	return f, f.load()
}

// load reads the files; on an error the pair in use stays.
func (f *tlsFiles) load() error {
	pair, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return fmt.Errorf("app: TLS certificate: %w", err)
	}
	st := &tlsState{cert: &pair}
	if f.clientCA != "" {
		pem, err := os.ReadFile(f.clientCA)
		if err != nil {
			return fmt.Errorf("app: client CA: %w", err)
		}
		st.cas = x509.NewCertPool()
		if !st.cas.AppendCertsFromPEM(pem) {
			return fmt.Errorf("app: client CA %s holds no PEM certificate", f.clientCA)
		}
	}
	f.cur.Store(st)
	return nil
}

// config is TLS 1.2 or later with AEAD suites only (SPEC §15); with a
// client CA it asks for a client certificate and verifies any given (a
// client that authenticates by secret or key need not have one).
func (f *tlsFiles) config() *tls.Config {
	base := func(st *tlsState) *tls.Config {
		c := &tls.Config{
			MinVersion: tls.VersionTLS12,
			CipherSuites: []uint16{
				tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
				tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
				tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
			},
			NextProtos:   []string{"h2", "http/1.1"},
			Certificates: []tls.Certificate{*st.cert},
		}
		if st.cas != nil {
			c.ClientCAs, c.ClientAuth = st.cas, tls.VerifyClientCertIfGiven
		}
		return c
	}
	c := base(f.cur.Load())
	c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return base(f.cur.Load()), nil }
	return c
}

// limitListener caps connections per source (an IPv4 address, an IPv6
// /64) and in all. When the total is reached, a new connection evicts an
// idle keep-alive one rather than waiting behind it, so parked
// connections cannot lock out new clients; with none idle, the newcomer
// is closed.
type limitListener struct {
	net.Listener
	perIP, total int
	refused      func(limit string)

	mu   sync.Mutex
	byIP map[string]int
	open int
	idle map[*limitConn]struct{}
}

func newLimitListener(ln net.Listener, perIP, total int, refused func(string)) *limitListener {
	return &limitListener{Listener: ln, perIP: perIP, total: total, refused: refused, byIP: map[string]int{}, idle: map[*limitConn]struct{}{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		ip := request.Bucket(host)
		l.mu.Lock()
		if l.byIP[ip] >= l.perIP {
			l.mu.Unlock()
			l.refused("connectionsPerIP")
			c.Close()
			continue
		}
		var victim *limitConn
		if l.open >= l.total {
			for v := range l.idle {
				victim = v
				break
			}
			if victim == nil {
				l.mu.Unlock()
				l.refused("connectionsTotal")
				c.Close()
				continue
			}
			delete(l.idle, victim)
		}
		l.mu.Unlock()
		if victim != nil {
			victim.Close()
		}
		l.mu.Lock()
		l.byIP[ip]++
		l.open++
		l.mu.Unlock()
		return &limitConn{Conn: c, l: l, ip: ip}, nil
	}
}

// connState is the http.Server's ConnState hook: it tells the listener
// which connections sit idle between requests.
func (l *limitListener) connState(c net.Conn, st http.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st == http.StateIdle && !lc.closed {
		l.idle[lc] = struct{}{}
	} else {
		delete(l.idle, lc)
	}
}

// count reports the connections open now.
func (l *limitListener) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

type limitConn struct {
	net.Conn
	l      *limitListener
	ip     string
	once   sync.Once
	closed bool // under l.mu
}

func (c *limitConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		c.closed = true
		delete(c.l.idle, c)
		c.l.open--
		if c.l.byIP[c.ip]--; c.l.byIP[c.ip] <= 0 {
			delete(c.l.byIP, c.ip)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}

// CloseWrite passes the half-close through: net/http half-closes before
// it drops a connection it refused (431, 400), so the client reads the
// answer instead of a reset.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
