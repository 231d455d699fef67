// Package server is resetd's HTTP face: routes, JSON handlers, the OAuth2
// token endpoint, middleware, and the one place errors become statuses.
package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/metrics"
	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/reset"
)

// P is the prefix of the password-reset API.
const P = "/a/password-reset/api/v0"

// settingsPutPattern is the settings PUT's route: its body may be larger
// than others' (it carries a logo).
const settingsPutPattern = "PUT " + P + "/institutions/{institutionId}/settings"

// TokenPath is the OAuth2 token endpoint (the seed's tokenUrl path).
const TokenPath = "/a/oidc-provider/api/v0/token"

// Config wires a Server. Nil Metrics is a fresh metrics.Metrics; Logger
// is wrapped so each line of a request carries its transaction id
// (request.Logger).
type Config struct {
	Reset *reset.Service
	Auth  *auth.Service
	// Ready reports whether the service can serve (the database
	// answers); /readyz calls it. Nil is always ready.
	Ready          func(ctx context.Context) error
	Metrics        Metrics
	Logger         *slog.Logger
	TrustedProxies []netip.Prefix
	// MTLS: the listener verifies client certificates (--client-ca), so
	// tls_client_auth is offered.
	MTLS bool
	// HSTS adds Strict-Transport-Security to every answer (an https
	// public URL).
	HSTS bool
	// MetricsElsewhere: /metrics is served by Management on its own
	// listener (--metrics-addr) and this handler answers 404 for it.
	MetricsElsewhere bool
	// PublicURL is named as the server of GET /openapi.yaml.
	PublicURL string
}

// Metrics is what the server reports to and serves at /metrics;
// *metrics.Metrics has it.
type Metrics interface {
	ObserveRequest(route, method string, status int, d time.Duration)
	RateLimited(limit string)
	Handler() http.Handler
}

// Server serves resetd's HTTP API.
type Server struct {
	reset          *reset.Service
	auth           *auth.Service
	ready          func(ctx context.Context) error
	metrics        Metrics
	logger         *slog.Logger
	trustedProxies []netip.Prefix
	mtls, hsts     bool
	mux            *recordingMux
	management     *http.ServeMux
	openAPIDoc     []byte
}

// New builds the server and its routes.
func New(c Config) *Server {
	if c.Metrics == nil {
		c.Metrics = metrics.New()
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Logger = request.Logger(c.Logger)
	s := &Server{reset: c.Reset, auth: c.Auth, ready: c.Ready, metrics: c.Metrics, logger: c.Logger, trustedProxies: c.TrustedProxies, mtls: c.MTLS, hsts: c.HSTS, mux: newRecordingMux(), openAPIDoc: openAPIFor(c.PublicURL)}
	s.routes(!c.MetricsElsewhere)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.wrap(http.HandlerFunc(s.route)).ServeHTTP(w, r)
}

// route dispatches through the mux, turning its plain-text 404 and 405
// answers into problem documents (keeping the Allow header).
func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r)
		return
	}
	probe := &headerProbe{header: http.Header{}}
	h.ServeHTTP(probe, r)
	if allow := probe.header.Get("Allow"); allow != "" {
		w.Header().Set("Allow", allow)
	}
	switch probe.status {
	case http.StatusMethodNotAllowed:
		s.problem(w, r, http.StatusMethodNotAllowed, "method-not-allowed", "this endpoint does not answer "+r.Method)
	default:
		s.problem(w, r, http.StatusNotFound, "not-found", "no such endpoint")
	}
}

// headerProbe records what the mux's fallback handler would answer.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header         { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerProbe) WriteHeader(code int)        { p.status = code }

// Route is the pattern that serves r ("" for none): a name for its span.
func (s *Server) Route(r *http.Request) string {
	_, p := s.mux.Handler(r)
	return p
}

// Management serves /metrics, /healthz and /readyz for the operator's
// listener (--metrics-addr), apart from the customer-facing one.
func (s *Server) Management() http.Handler { return s.management }

// Handle lets other packages (the reset page) add routes.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// routes registers the API. Every pattern goes through the recording mux, so
// Patterns() (and the OpenAPI round trip) sees it.
func (s *Server) routes(metricsHere bool) {
	m := s.mux
	m.HandleFunc("POST "+TokenPath, s.token)
	m.HandleFunc("GET /.well-known/jwks.json", s.jwks)
	m.HandleFunc("GET /.well-known/oauth-authorization-server", s.metadata)
	m.HandleFunc("GET /healthz", s.healthz)
	m.HandleFunc("GET /readyz", s.readyz)
	if metricsHere {
		m.Handle("GET /metrics", s.metrics.Handler())
	}
	s.management = http.NewServeMux()
	s.management.Handle("GET /metrics", s.metrics.Handler())
	s.management.HandleFunc("GET /healthz", s.healthz)
	s.management.HandleFunc("GET /readyz", s.readyz)
	m.HandleFunc("GET /openapi.yaml", s.openAPI)
	m.HandleFunc("GET /favicon.ico", s.faviconICO)

	inst := P + "/institutions/{institutionId}"
	m.HandleFunc("POST "+inst+"/users/{userId}/password/reset", s.authorize(auth.ScopeResetWrite, s.sendResetLink))
	m.HandleFunc("GET "+inst+"/settings", s.authorize(auth.ScopeSettingsRead, s.getSettings))
	m.HandleFunc(settingsPutPattern, s.authorize(auth.ScopeSettingsWrite, s.putSettings))
	m.HandleFunc("GET "+inst+"/users", s.authorize(auth.ScopeUsersRead, s.findUsers))
	m.HandleFunc("PUT "+inst+"/users/{userId}", s.authorize(auth.ScopeUsersManage, s.putUser))
	m.HandleFunc("DELETE "+inst+"/users/{userId}", s.authorize(auth.ScopeUsersManage, s.deleteUser))
	m.HandleFunc("GET "+inst+"/users/{userId}/password/deliveries", s.authorize(auth.ScopeUsersRead, s.deliveries))
	m.HandleFunc("POST "+inst+"/users/{userId}/password/verify", s.authorize(auth.ScopeVerify, s.verifyPassword))
	m.HandleFunc("GET "+inst+"/audit", s.authorize(auth.ScopeSettingsRead, s.audit))
	m.HandleFunc("POST "+P+"/password/change", s.changePassword)
	m.HandleFunc("GET "+inst+"/users/{userId}/contact-methods", s.authorize(auth.ScopeUsersRead, s.contactMethods))
	m.HandleFunc("POST "+inst+"/approvals/{approvalId}", s.authorize(auth.ScopeApprove, s.approve))
	m.HandleFunc("POST "+inst+"/users/{userId}/password/otp", s.authorize(auth.ScopeUsersWrite, s.sendOTP))
	m.HandleFunc("POST "+inst+"/password/otp/verify", s.verifyOTP)
	m.HandleFunc("GET "+inst+"/users/{userId}/state", s.authorize(auth.ScopeUsersManage, s.userState))
	m.HandleFunc("POST "+inst+"/users/{userId}/unlock", s.authorize(auth.ScopeUsersManage, s.unlockUser))
	m.HandleFunc("POST "+inst+bulkPath, s.authorize(auth.ScopeResetWrite, s.startBulk))
	m.HandleFunc("GET "+inst+bulkPath+"/{bulkId}", s.authorize(auth.ScopeResetWrite, s.bulkStatus))
	m.HandleFunc("DELETE "+inst+bulkPath+"/{bulkId}", s.authorize(auth.ScopeResetWrite, s.cancelBulk))
	m.HandleFunc("GET /api/Authorize/SendResetPassword", s.sendResetPassword)
	m.HandleFunc("POST /api/Authorize/SendResetPassword", s.sendResetPassword)
	m.HandleFunc("POST /api/Authorize/ChangePassword", s.changePasswordCompat)

}

func actor(r *http.Request, clientID string) reset.Actor {
	return reset.Actor{ClientID: clientID, IP: request.ClientIP(r.Context()), TransactionID: request.TransactionID(r.Context())}
}

// apiHandler is an authorized API handler: it knows the caller.
type apiHandler func(w http.ResponseWriter, r *http.Request, c auth.Claims)

// authorize checks the access token (header only), its binding, the scope,
// and the institution binding. A token bound to a certificate needs that
// certificate on the connection; one bound to a DPoP key needs the DPoP
// scheme and a fresh proof by that key (SPEC §15). A token for another
// institution gets 404, so a caller never learns that an institution
// exists.
func (s *Server) authorize(scope string, next apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Query().Has("access_token") {
			s.unauthorized(w, r, "invalid_request", "access tokens are accepted only in the Authorization header")
			return
		}
		h := r.Header.Get("Authorization")
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if h == "" {
			s.unauthorized(w, r, "", "missing bearer token")
			return
		}
		dpop := strings.EqualFold(scheme, "DPoP")
		if !ok || !(dpop || strings.EqualFold(scheme, "Bearer")) || tok == "" {
			s.unauthorized(w, r, "invalid_request", "malformed Authorization header")
			return
		}
		claims, err := s.auth.Verify(r.Context(), tok)
		if err != nil {
			fails := s.reset.AuthFailures()
			if fails.Failed(actor(r, ""), "auth.bearer", r.PathValue("institutionId"), "invalid_token") {
				s.metrics.RateLimited("authFailuresPerIPMinute")
				request.RetryAfter(w, fails.RetryAfter())
				s.problem(w, r, http.StatusTooManyRequests, "rate-limited", "too many failed authentications from this address; retry later")
				return
			}
			s.unauthorized(w, r, "invalid_token", "the access token is invalid or expired")
			return
		}
		if !s.boundOK(w, r, claims, dpop, tok) {
			// Audited aggregated like any failed authentication (boundOK
			// has answered).
			s.reset.AuthFailures().Failed(actor(r, claims.ClientID), "auth.bearer", r.PathValue("institutionId"), "unbound_token")
			return
		}
		request.SetClientID(r.Context(), claims.ClientID)
		if i := r.PathValue("institutionId"); i != "" && !claims.Allows(i) {
			// Worded as for an institution that does not exist: a client
			// must not learn which others do.
			s.problem(w, r, http.StatusNotFound, "not-found", "no such institution")
			return
		}
		if !claims.Has(scope) {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error="insufficient_scope", scope=%q`, scope))
			s.problem(w, r, http.StatusForbidden, "insufficient-scope", "the access token lacks the scope "+scope)
			return
		}
		next(w, r, claims)
	}
}

// boundOK checks a token's cnf against the request: the same client
// certificate (RFC 8705 §3), or the DPoP scheme with a valid proof by the
// bound key (RFC 9449 §7). On a refusal it has answered 401.
func (s *Server) boundOK(w http.ResponseWriter, r *http.Request, c auth.Claims, dpop bool, tok string) bool {
	if c.X5T != "" {
		cert := peerCert(r)
		if cert == nil || auth.CertThumbprint(cert) != c.X5T {
			s.unauthorized(w, r, "invalid_token", "the access token is bound to a client certificate this connection did not present")
			return false
		}
	}
	switch {
	case c.JKT == "" && dpop:
		w.Header().Set("WWW-Authenticate", dpopChallenge("invalid_token", "the access token is not DPoP-bound; send it as a Bearer token"))
		s.problem(w, r, http.StatusUnauthorized, "unauthorized", "the access token is not DPoP-bound")
		return false
	case c.JKT == "":
		return true
	case !dpop:
		s.dpopUnauthorized(w, r, "a DPoP-bound access token must be sent with the DPoP scheme and a proof")
		return false
	}
	jkt, err := s.dpopProof(r, r.Header.Values("DPoP"), tok)
	if err != nil && !errors.Is(err, auth.ErrInvalidDPoPProof) {
		s.fail(w, r, err)
		return false
	}
	if err != nil {
		s.dpopUnauthorized(w, r, strings.TrimPrefix(err.Error(), auth.ErrInvalidDPoPProof.Error()+": "))
		return false
	}
	if jkt != c.JKT {
		s.dpopUnauthorized(w, r, "the proof is signed by another key than the token is bound to")
		return false
	}
	return true
}

func (s *Server) dpopUnauthorized(w http.ResponseWriter, r *http.Request, detail string) {
	w.Header().Set("WWW-Authenticate", dpopChallenge("invalid_dpop_proof", detail))
	s.problem(w, r, http.StatusUnauthorized, "invalid-dpop-proof", detail)
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, code, detail string) {
	v := `Bearer realm="resetd"`
	if code != "" {
		v += fmt.Sprintf(`, error=%q, error_description=%q`, code, detail)
	}
	w.Header().Set("WWW-Authenticate", v)
	w.Header().Add("WWW-Authenticate", dpopChallenge("", ""))
	s.problem(w, r, http.StatusUnauthorized, "unauthorized", detail)
}

// decode reads one JSON object: right content type, at most 64 KiB, no
// unknown fields, nothing after it.
func decode(r *http.Request, v any, allowEmpty bool) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" && allowEmpty && r.ContentLength == 0 {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return errUnsupportedMedia
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		// The body stalled past the read timeout or ended before its
		// Content-Length: the client's fault, a 400, not ours.
		return &reset.InvalidError{Field: "body", Detail: "the request body stalled or ended early"}
	}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 && allowEmpty {
		return nil
	}
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return &reset.InvalidError{Field: "body", Detail: "the body must be a JSON object"}
	}
	if !utf8.Valid(trimmed) {
		return &reset.InvalidError{Field: "body", Detail: "the body is not valid UTF-8"}
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		if errors.Is(err, io.EOF) && allowEmpty {
			return nil
		}
		return &reset.InvalidError{Field: "body", Detail: "malformed JSON: " + jsonDetail(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return &reset.InvalidError{Field: "body", Detail: "malformed JSON: trailing data after the object"}
	}
	return nil
}

// jsonDetail keeps decoder messages useful without echoing input values.
func jsonDetail(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("syntax error at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q must be %s", typ.Field, typ.Type)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return strings.TrimPrefix(err.Error(), "json: ")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "empty or truncated body"
	default:
		return "not a JSON object"
	}
}

var errUnsupportedMedia = errors.New("server: unsupported media type")

func (s *Server) bad(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errUnsupportedMedia) {
		s.problem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", "send Content-Type: application/json")
		return
	}
	s.fail(w, r, err)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if s.ready == nil {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		return
	}
	if err := s.ready(ctx); err != nil {
		s.logger.WarnContext(ctx, "readiness check failed", "err", err)
		s.problem(w, r, http.StatusServiceUnavailable, "not-ready", "database unreachable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
