package server

import (
	"net/http"

	"github.com/resetd/resetd/internal/auth"
)

func (s *Server) userState(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	st, err := s.reset.State(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("userId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) unlockUser(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var body struct{}
	if err := decode(r, &body, true); err != nil {
		s.bad(w, r, err)
		return
	}
	if err := s.reset.Unlock(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("userId")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
