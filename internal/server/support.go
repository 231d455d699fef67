package server

import (
	"net/http"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/reset"
)

// UserStateJSON is the support view of a user's blocks (SPEC §10); times
// are RFC 3339, null when there is no lock or cooldown.
type UserStateJSON struct {
	LockedUntil        *string `json:"lockedUntil"`
	EmailCooldownUntil *string `json:"emailCooldownUntil"`
	PhoneCooldownUntil *string `json:"phoneCooldownUntil"`
	LiveLinks          int     `json:"liveLinks"`
	LiveOTP            bool    `json:"liveOTP"`
	SendsThisHour      int     `json:"sendsThisHour"`
	WrongTriesToday    int     `json:"wrongTriesToday"`
}

// StateJSON renders a user's state as the API and the CLI print it.
func StateJSON(st reset.UserState) UserStateJSON {
	at := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		v := t.UTC().Format(time.RFC3339)
		return &v
	}
	return UserStateJSON{
		LockedUntil: at(st.LockedUntil), EmailCooldownUntil: at(st.EmailCooldownUntil), PhoneCooldownUntil: at(st.PhoneCooldownUntil),
		LiveLinks: st.LiveLinks, LiveOTP: st.LiveOTP, SendsThisHour: st.SendsThisHour, WrongTriesToday: st.WrongTriesToday,
	}
}

func (s *Server) userState(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	st, err := s.reset.State(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("userId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, StateJSON(st))
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
