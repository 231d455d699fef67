package server

import (
	"net/http"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/reset"
)

// bulkPath is the suffix of the bulk reset routes.
const bulkPath = "/password/reset-bulk"

// startBulk is POST …/password/reset-bulk: 202 {"bulkId"}. A retry with
// the same Idempotency-Key and body answers the same bulkId (with
// Idempotent-Replayed: true) and starts nothing.
func (s *Server) startBulk(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var body struct {
		Method  string    `json:"method"`
		UserIDs *[]string `json:"userIds"`
		All     *bool     `json:"all"`
	}
	if err := decode(r, &body, false); err != nil {
		s.bad(w, r, err)
		return
	}
	keys := r.Header.Values("Idempotency-Key")
	if len(keys) > 1 {
		s.fail(w, r, &reset.InvalidError{Field: "Idempotency-Key", Detail: "give the Idempotency-Key header at most once"})
		return
	}
	req := reset.BulkRequest{Method: body.Method, All: body.All != nil && *body.All, ListGiven: body.UserIDs != nil}
	if body.UserIDs != nil {
		req.UserIDs = *body.UserIDs
	}
	if len(keys) == 1 {
		req.IdempotencyKey = keys[0]
		if req.IdempotencyKey == "" {
			s.fail(w, r, &reset.InvalidError{Field: "Idempotency-Key", Detail: "the Idempotency-Key header must not be empty"})
			return
		}
	}
	id, created, err := s.reset.StartBulk(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !created {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"bulkId": id})
}

// bulkStatus is GET …/password/reset-bulk/{bulkId}: the progress.
func (s *Server) bulkStatus(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	st, err := s.reset.BulkStatus(r.Context(), r.PathValue("institutionId"), r.PathValue("bulkId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// cancelBulk is DELETE …/password/reset-bulk/{bulkId}: 200 with the
// progress after the cancellation; a finished bulk is left as it is.
func (s *Server) cancelBulk(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	st, err := s.reset.CancelBulk(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("bulkId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
