package server

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
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
	if q.Has("client_secret") || q.Has("client_id") {
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
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		// RFC 6749 §2.3.1: Basic credentials are form-urlencoded first.
		id, err1 := url.QueryUnescape(basicID)
		sec, err2 := url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			oauthError(w, http.StatusBadRequest, "invalid_request", "malformed Basic credentials")
			return
		}
		basicID, basicSecret = id, sec
	}
	postID, postSecret := form.Get("client_id"), form.Get("client_secret")
	hasPost := form.Has("client_secret")
	switch {
	case hasBasic && hasPost:
		oauthError(w, http.StatusBadRequest, "invalid_request", "use one client authentication method, not two")
		return
	case !hasBasic && !hasPost:
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication required")
		return
	case hasBasic && postID != "" && postID != basicID:
		oauthError(w, http.StatusBadRequest, "invalid_request", "client_id does not match the Basic credentials")
		return
	}
	id, secret := basicID, basicSecret
	if hasPost {
		id, secret = postID, postSecret
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
	if len(id) > 200 || len(secret) > 500 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	// An IP past its failed authentications is refused before the work
	// (and the writes) of checking a secret.
	fails := s.reset.AuthFailures()
	if fails.Refused(actor(r, id), "auth.token", "") {
		s.metrics.RateLimited("authFailuresPerIPMinute")
		request.RetryAfter(w, fails.RetryAfter())
		oauthError(w, http.StatusTooManyRequests, "slow_down", "too many failed attempts from this address; retry later")
		return
	}
	client, err := s.auth.Authenticate(r.Context(), id, secret)
	switch {
	case errors.Is(err, auth.ErrThrottled):
		s.metrics.RateLimited("clientSecretFailures")
		fails.Failed(actor(r, id), "auth.token", "", "throttled")
		request.RetryAfter(w, 15*60e9)
		oauthError(w, http.StatusTooManyRequests, "slow_down", "too many failed attempts for this client; retry later")
		return
	case errors.Is(err, auth.ErrInvalidClient):
		if fails.Failed(actor(r, id), "auth.token", "", "invalid_client") {
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
	request.SetClientID(r.Context(), client.ID)
	tok, scopes, err := s.auth.Issue(client, strings.Fields(form.Get("scope")))
	if errors.Is(err, auth.ErrInvalidScope) {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "the client may not have the requested scope")
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
		"access_token": tok, "token_type": "Bearer", "expires_in": int(auth.TokenTTL.Seconds()), "scope": strings.Join(scopes, " "),
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
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"scopes_supported":                      auth.AllScopes,
		"response_types_supported":              []string{"token"},
	})
}
