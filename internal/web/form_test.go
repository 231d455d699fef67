package web

import (
	"github.com/resetd/resetd/internal/i18n"
	"html"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Every POST passes the one guard: a body that is not a form gets 400, a
// missing or wrong CSRF value 403, each with its page's way back, and the
// domain is not asked.
func TestPostsShareOneFormGuard(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, path, body string
		status           int
		text             string
	}{
		{"reset unreadable", "/reset", "%zz", http.StatusBadRequest, resetForm.unreadable},
		{"reset no csrf", "/reset", "password=x&confirm=x", http.StatusForbidden, resetForm.refused},
		{"code unreadable", "/reset/code", "%zz", http.StatusBadRequest, codeFormPage.unreadable},
		{"code no csrf", "/reset/code", "institution=acme&username=jane&code=123456", http.StatusForbidden, codeFormPage.refused},
		{"dispute unreadable", disputeConfirmPath, "%zz", http.StatusBadRequest, disputeFormPage.unreadable},
		{"dispute wrong csrf", disputeConfirmPath, "csrf=nope", http.StatusForbidden, disputeFormPage.refused},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSetup(t, "http://127.0.0.1:8080")
			var cookies []*http.Cookie
			switch c.path {
			case "/reset":
				cookie, _ := s.open(t)
				cookies = append(cookies, cookie)
			case disputeConfirmPath:
				cookies = s.do(t, "GET", "/reset/dispute?token="+testToken, nil).Result().Cookies()
			}
			r := httptest.NewRequest("POST", c.path, strings.NewReader(c.body))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for _, ck := range cookies {
				r.AddCookie(ck)
			}
			w := httptest.NewRecorder()
			s.srv.ServeHTTP(w, r)
			// The page as an English reader sees it.
			text := html.EscapeString(i18n.Messages().In("en").T(c.text, nil))
			if w.Code != c.status || !strings.Contains(w.Body.String(), text) {
				t.Fatalf("%d, want %d with %q:\n%s", w.Code, c.status, c.text, w.Body)
			}
			if len(s.fake.changed) != 0 || s.fake.disputed != 0 {
				t.Error("the domain was asked")
			}
		})
	}
}
