package server

import (
	"mime"
	"net/http"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/reset"
)

func (s *Server) contactMethods(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	cms, err := s.reset.ContactMethods(r.Context(), r.PathValue("institutionId"), r.PathValue("userId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contactMethods": cms})
}

func (s *Server) sendOTP(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var body struct {
		ContactMethodID string `json:"contactMethodId"`
	}
	if err := decode(r, &body, false); err != nil {
		s.bad(w, r, err)
		return
	}
	sent, err := s.reset.SendOTP(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("userId"), body.ContactMethodID)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if sent.Approval.ID != "" {
		writeJSON(w, http.StatusAccepted, map[string]string{"approvalId": sent.Approval.ID, "expiresAt": sent.Approval.ExpiresAt.UTC().Format(time.RFC3339)})
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"expiresAt": sent.ExpiresAt.UTC().Format(time.RFC3339), "destination": sent.Destination})
}

func (s *Server) verifyOTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var body struct {
		Username string            `json:"username"`
		UserID   string            `json:"userId"`
		OTP      string            `json:"otp"`
		Facts    map[string]string `json:"facts"`
	}
	if err := decode(r, &body, false); err != nil {
		s.bad(w, r, err)
		return
	}
	tok, expires, err := s.reset.VerifyOTP(r.Context(), actor(r, ""), r.PathValue("institutionId"), reset.OTPVerifyInput{
		Username: body.Username, UserID: body.UserID, OTP: body.OTP, Facts: body.Facts,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"token": tok, "expiresAt": expires.UTC().Format(time.RFC3339)})
}

// sendResetPassword is seed 002's self-service endpoint: GET with a query,
// or POST with the same fields in the query, a form or a JSON object.
func (s *Server) sendResetPassword(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method == http.MethodHead {
		// A link checker's HEAD sends nothing and spends no budget.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		return
	}
	var in struct {
		Username      string `json:"username"`
		LinkReset     string `json:"linkReset"`
		SiteName      string `json:"siteName"`
		InstitutionID string `json:"institutionId"`
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost && r.ContentLength != 0 {
		mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		switch mt {
		case "application/json":
			if err := decode(r, &in, true); err != nil {
				s.bad(w, r, err)
				return
			}
		case "application/x-www-form-urlencoded":
			if err := r.ParseForm(); err != nil {
				s.fail(w, r, &reset.InvalidError{Field: "body", Detail: "malformed form body"})
				return
			}
			q = r.Form
		default:
			s.problem(w, r, http.StatusUnsupportedMediaType, "unsupported-media-type", "send the fields in the query string, a form or a JSON object")
			return
		}
	}
	for _, f := range []struct {
		dst  *string
		name string
	}{{&in.Username, "username"}, {&in.LinkReset, "linkReset"}, {&in.SiteName, "siteName"}, {&in.InstitutionID, "institutionId"}} {
		if len(q[f.name]) > 1 {
			s.fail(w, r, &reset.InvalidError{Field: f.name, Detail: f.name + " is repeated"})
			return
		}
		if v := q.Get(f.name); v != "" {
			*f.dst = v
		}
	}
	email, err := s.reset.SendResetPassword(r.Context(), actor(r, ""), reset.SelfServiceInput{
		Username: in.Username, LinkReset: in.LinkReset, SiteName: in.SiteName, InstitutionID: in.InstitutionID, Method: r.Method,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, email)
}
