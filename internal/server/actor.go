package server

import (
	"net/http"

	"github.com/resetd/resetd/internal/reset"
)

// Actor is who made a public request: its client IP (honouring trusted
// proxies) and transaction id. The reset page uses it for audit and limits.
func (s *Server) Actor(r *http.Request) reset.Actor { return actor(r, "") }
