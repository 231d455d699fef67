package server

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/reset"
)

func (s *Server) sendResetLink(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var body struct {
		Method string `json:"method"`
	}
	if err := decode(r, &body, false); err != nil {
		s.bad(w, r, err)
		return
	}
	pending, err := s.reset.SendResetLink(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("userId"), body.Method)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if pending.ID != "" {
		writeJSON(w, http.StatusAccepted, map[string]string{"approvalId": pending.ID, "expiresAt": pending.ExpiresAt.UTC().Format(time.RFC3339)})
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

// approve is the checker's half of maker-checker (SPEC §7).
func (s *Server) approve(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var body struct{}
	if err := decode(r, &body, true); err != nil {
		s.bad(w, r, err)
		return
	}
	if err := s.reset.Approve(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("approvalId")); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct{}{})
}

func (s *Server) getSettings(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	st, err := s.reset.Settings(r.Context(), r.PathValue("institutionId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) putSettings(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var p reset.SettingsPatch
	if err := decode(r, &p, false); err != nil {
		s.bad(w, r, err)
		return
	}
	if _, err := s.reset.UpdateSettings(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), p); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type userJSON struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Status   string `json:"status"`
	Locale   string `json:"locale,omitempty"`
}

func (s *Server) findUsers(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	q := r.URL.Query()
	if len(q["username"]) != 1 {
		s.fail(w, r, &reset.InvalidError{Field: "username", Detail: "give exactly one username query parameter"})
		return
	}
	users, err := s.reset.FindUsers(r.Context(), r.PathValue("institutionId"), q.Get("username"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := struct {
		Users []userJSON `json:"users"`
	}{Users: []userJSON{}}
	for _, u := range users {
		out.Users = append(out.Users, userJSON{ID: u.ID, Username: u.Username, Status: u.Status, Locale: u.Locale})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) putUser(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var body struct {
		Username     string            `json:"username"`
		Email        string            `json:"email"`
		Phone        string            `json:"phone"`
		Status       string            `json:"status"`
		Locale       string            `json:"locale"`
		Password     *string           `json:"password"`
		PasswordHash *string           `json:"passwordHash"`
		Facts        map[string]string `json:"facts"`
	}
	if err := decode(r, &body, false); err != nil {
		s.bad(w, r, err)
		return
	}
	created, err := s.reset.PutUser(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("userId"), reset.UserInput{
		Username: body.Username, Email: body.Email, Phone: body.Phone, Status: body.Status, Locale: body.Locale,
		Password: body.Password, PasswordHash: body.PasswordHash, Facts: body.Facts,
	})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, struct{}{})
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	del := s.reset.DeleteUser
	switch v := r.URL.Query()["erase"]; {
	case len(v) == 0 || (len(v) == 1 && v[0] == "false"):
	case len(v) == 1 && v[0] == "true":
		del = s.reset.EraseUser
	default:
		s.fail(w, r, &reset.InvalidError{Field: "erase", Detail: "erase must be given at most once, as true or false"})
		return
	}
	if err := del(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("userId")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type deliveryJSON struct {
	ID          int64     `json:"id"`
	Kind        string    `json:"kind"`
	Channel     string    `json:"channel"`
	Destination string    `json:"destination"`
	State       string    `json:"state"`
	Attempts    int       `json:"attempts"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	LastError   string    `json:"lastError"`
}

func deliveriesJSON(ds []reset.Delivery) []deliveryJSON {
	out := make([]deliveryJSON, 0, len(ds))
	for _, d := range ds {
		out = append(out, deliveryJSON{ID: d.ID, Kind: d.Kind, Channel: d.Channel, Destination: d.Destination, State: d.State,
			Attempts: d.Attempts, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt, LastError: d.LastError})
	}
	return out
}

func (s *Server) deliveries(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	ds, err := s.reset.Deliveries(r.Context(), r.PathValue("institutionId"), r.PathValue("userId"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": deliveriesJSON(ds)})
}

func (s *Server) verifyPassword(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var body struct {
		Password string `json:"password"`
	}
	if err := decode(r, &body, false); err != nil {
		s.bad(w, r, err)
		return
	}
	if err := s.reset.VerifyPassword(r.Context(), actor(r, c.ClientID), r.PathValue("institutionId"), r.PathValue("userId"), body.Password); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	q, err := auditQuery(r.URL.Query())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.reset.Audit(r.Context(), r.PathValue("institutionId"), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	body := map[string]any{"records": page.Records}
	if page.NextCursor != "" {
		body["nextCursor"] = page.NextCursor
	}
	writeJSON(w, http.StatusOK, body)
}

// auditQuery reads since, until, limit and cursor, each at most once.
func auditQuery(v url.Values) (reset.AuditQuery, error) {
	var q reset.AuditQuery
	for _, k := range []string{"since", "until", "limit", "cursor"} {
		if len(v[k]) > 1 {
			return q, &reset.InvalidError{Field: k, Detail: "give " + k + " at most once"}
		}
	}
	for k, t := range map[string]*time.Time{"since": &q.Since, "until": &q.Until} {
		if s := v.Get(k); s != "" {
			p, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return q, &reset.InvalidError{Field: k, Detail: k + " must be an RFC 3339 time"}
			}
			*t = p
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > reset.AuditMaxLimit {
			return q, &reset.InvalidError{Field: "limit", Detail: "limit must be an integer from 1 to 10000"}
		}
		q.Limit = n
	}
	q.Cursor = v.Get("cursor")
	return q, nil
}

// changePassword is P/password/change: 204 on success.
func (s *Server) changePassword(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, http.StatusNoContent)
}

// changePasswordCompat is seed 002's ChangePassword: the same rules,
// answering 200 {}.
func (s *Server) changePasswordCompat(w http.ResponseWriter, r *http.Request) {
	s.change(w, r, http.StatusOK)
}

// change consumes a reset token and sets the password for both change
// endpoints; they differ only in their success answer.
func (s *Server) change(w http.ResponseWriter, r *http.Request, success int) {
	w.Header().Set("Cache-Control", "no-store")
	var body changeBody
	if err := decode(r, &body, false); err != nil {
		s.bad(w, r, err)
		return
	}
	if err := s.reset.ChangePasswordWithFacts(r.Context(), actor(r, ""), body.Token, body.NewPassword, body.Facts); err != nil {
		s.fail(w, r, err)
		return
	}
	if success == http.StatusNoContent {
		w.WriteHeader(success)
		return
	}
	writeJSON(w, success, struct{}{})
}

// changeBody is the body of both change endpoints.
type changeBody struct {
	Token       string            `json:"token"`
	NewPassword string            `json:"newPassword"`
	Facts       map[string]string `json:"facts"`
}
