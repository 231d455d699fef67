package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/resetd/resetd/internal/auth"
)

// credentials reads how a token request authenticates its client: HTTP
// Basic or client_secret in the form (RFC 6749 §2.3.1), a client assertion
// (RFC 7523 §2.2), or client_id with a verified TLS client certificate
// (RFC 8705 §2). Two methods at once is an error. On a refusal it has
// answered and ok is false.
func (s *Server) credentials(w http.ResponseWriter, r *http.Request, form url.Values) (c auth.Credentials, ok bool) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
		id, err1 := url.QueryUnescape(basicID)
		sec, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "malformed Basic credentials")
			return c, false
		}
		basicID, basicSecret = id, sec
	}
	postID, postSecret := form.Get("client_id"), form.Get("client_secret")
	hasPost := form.Has("client_secret")
	hasAssertion := form.Has("client_assertion") || form.Has("client_assertion_type")
	methods := 0
	for _, has := range []bool{hasBasic, hasPost, hasAssertion} {
		if has {
			methods++
		}
	}
	switch {
	case methods > 1:
		oauthError(w, http.StatusBadRequest, "invalid_request", "use one client authentication method, not two")
		return c, false
	case hasBasic && postID != "" && postID != basicID:
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id does not match the Basic credentials")
		return c, false
	case hasAssertion && form.Get("client_assertion_type") != auth.AssertionType:
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_assertion_type must be "+auth.AssertionType)
		return c, false
	case hasAssertion && form.Get("client_assertion") == "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_assertion is required")
		return c, false
	case hasAssertion:
		iss := s.auth.Issuer()
		c = auth.Credentials{ID: postID, Assertion: form.Get("client_assertion"), Audiences: []string{iss + TokenPath, iss}}
	case hasBasic:
		c = auth.Credentials{ID: basicID, Secret: basicSecret}
	case hasPost:
		c = auth.Credentials{ID: postID, Secret: postSecret}
	case postID != "" && peerCert(r) != nil:
		c = auth.Credentials{ID: postID, Cert: peerCert(r)}
	default:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication required")
		return c, false
	}
	if len(c.ID) > 200 || len(c.Secret) > 500 || len(c.Assertion) > 8<<10 || (c.Secret == "" && c.Assertion == "" && c.Cert == nil) {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return c, false
	}
	return c, true
}

// peerCert is the client certificate the TLS handshake verified against
// --client-ca, or nil.
func peerCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.PeerCertificates) == 0 {
		return nil
	}
	return r.TLS.PeerCertificates[0]
}

// dpopProof checks the one DPoP header of r against the request as
// clients address it (the public URL plus the path) and returns the
// proof key's thumbprint.
func (s *Server) dpopProof(r *http.Request, proofs []string, accessToken string) (string, error) {
	if len(proofs) != 1 || proofs[0] == "" {
		return "", fmt.Errorf("%w: exactly one DPoP header", auth.ErrInvalidDPoPProof)
	}
	return s.auth.CheckDPoP(r.Context(), proofs[0], r.Method, s.auth.Issuer()+r.URL.EscapedPath(), accessToken)
}

// dpopTokenError answers a token request whose proof failed (RFC 9449 §5).
func (s *Server) dpopTokenError(w http.ResponseWriter, r *http.Request, err error) {
	if !errors.Is(err, auth.ErrInvalidDPoPProof) {
		s.logger.ErrorContext(r.Context(), "checking DPoP proof", "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", strings.TrimPrefix(err.Error(), auth.ErrInvalidDPoPProof.Error()+": "))
}

func tokenType(b auth.Binding) string {
	if b.JKT != "" {
		return "DPoP"
	}
	return "Bearer"
}

// authMethods are the token endpoint's client authentication methods;
// tls_client_auth only when the listener asks for client certificates.
func (s *Server) authMethods() []string {
	m := []string{auth.MethodSecretBasic, auth.MethodSecretPost, auth.MethodPrivateKeyJWT}
	if s.mtls {
		m = append(m, auth.MethodTLSClientAuth)
	}
	return m
}

func algNames() []string {
	out := make([]string, len(auth.AssertionAlgs))
	for i, a := range auth.AssertionAlgs {
		out[i] = string(a)
	}
	return out
}

// dpopChallenge is the WWW-Authenticate value for the DPoP scheme.
func dpopChallenge(code, desc string) string {
	v := fmt.Sprintf(`DPoP algs="%s"`, strings.Join(algNames(), " "))
	if code != "" {
		v += fmt.Sprintf(`, error=%q, error_description=%q`, code, desc)
	}
	return v
}
