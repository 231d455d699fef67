package server

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/request"
)

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="resetd"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// token is the client-credentials token endpoint (RFC 6749 §4.4).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	q := r.URL.Query()
	if q.Has("client_secret") || q.Has("client_id") || q.Has("client_assertion") {
		oauthError(w, http.StatusBadRequest, "invalid_request", "client credentials are not accepted in the query string")
		return
	}
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			oauthError(w, http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	form := r.PostForm
	for k, v := range form {
		if len(v) > 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", "parameter "+k+" is repeated")
			return
		}
	}
	cred, ok := s.credentials(w, r, form)
	if !ok {
		return
	}
	gt := form.Get("grant_type")
	if gt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	}
	if gt != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "only client_credentials is supported")
		return
	}
	var bound auth.Binding
	if proofs := r.Header.Values("DPoP"); len(proofs) > 0 {
		jkt, err := s.dpopProof(r, proofs, "")
		if err != nil {
			s.dpopTokenError(w, r, err)
			return
		}
		bound.JKT = jkt
	}
	// An IP past its failed authentications is refused before the work
	// (and the writes) of checking a secret.
	fails := s.reset.AuthFailures()
	if fails.Refused(actor(r, cred.ID), "auth.token", "") {
		s.metrics.RateLimited("authFailuresPerIPMinute")
		request.RetryAfter(w, fails.RetryAfter())
		oauthError(w, http.StatusTooManyRequests, "slow_down", "too many failed attempts from this address; retry later")
		return
	}
	client, err := s.auth.AuthenticateCredentials(r.Context(), cred)
	switch {
	case errors.Is(err, auth.ErrThrottled):
		s.metrics.RateLimited("clientSecretFailures")
		fails.Failed(actor(r, cred.ID), "auth.token", "", "throttled")
		request.RetryAfter(w, 15*60e9)
		oauthError(w, http.StatusTooManyRequests, "slow_down", "too many failed attempts for this client; retry later")
		return
	case errors.Is(err, auth.ErrInvalidClient):
		if fails.Failed(actor(r, cred.ID), "auth.token", "", "invalid_client") {
			s.metrics.RateLimited("authFailuresPerIPMinute")
			request.RetryAfter(w, fails.RetryAfter())
			oauthError(w, http.StatusTooManyRequests, "slow_down", "too many failed attempts from this address; retry later")
			return
		}
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	case err != nil:
		s.logger.ErrorContext(r.Context(), "client authentication", "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	if client.RequireDPoP && bound.JKT == "" {
		oauthError(w, http.StatusBadRequest, "invalid_dpop_proof", "this client must send a DPoP proof")
		return
	}
	if client.AuthMethod == auth.MethodTLSClientAuth {
		bound.X5T = auth.CertThumbprint(cred.Cert)
	}
	request.SetClientID(r.Context(), client.ID)
	tok, scopes, err := s.auth.Issue(client, strings.Fields(form.Get("scope")), bound)
	if errors.Is(err, auth.ErrInvalidScope) {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "the client may not have the requested scope; its scopes are: "+strings.Join(client.Scopes, " "))
		return
	}
	if err != nil {
		s.logger.ErrorContext(r.Context(), "issuing token", "err", err)
		oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": tok, "token_type": tokenType(bound), "expires_in": int(auth.TokenTTL.Seconds()), "scope": strings.Join(scopes, " "),
	})
}

func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_ = json.NewEncoder(w).Encode(s.auth.JWKS())
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	iss := s.auth.Issuer()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        iss + TokenPath,
		"jwks_uri":                              iss + "/.well-known/jwks.json",
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": s.authMethods(),
		"token_endpoint_auth_signing_alg_values_supported": algNames(),
		"dpop_signing_alg_values_supported":                algNames(),
		"tls_client_certificate_bound_access_tokens":       s.mtls,
		"scopes_supported":                                 auth.AllScopes,
		"response_types_supported":                         []string{"token"},
	})
}
