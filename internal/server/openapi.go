package server

import (
	"bytes"
	_ "embed"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// openAPIDocument is the OpenAPI 3 description of every route the server
// registers; a test in internal/app holds the two to each other.
//
//go:embed openapi.yaml
var openAPIDocument []byte

// OpenAPIContentType is the media type GET /openapi.yaml answers with
// (RFC 9512).
const OpenAPIContentType = "application/yaml"

// devServers is the document's servers list as embedded; each server
// answers with its own public URL in its place.
var devServers = []byte("servers:\n  - url: http://127.0.0.1:8080\n    description: '`resetd serve --dev`; in production, the server''s `--public-url`'\n")

// openAPIFor is the document naming publicURL as its server.
func openAPIFor(publicURL string) []byte {
	if publicURL == "" {
		return openAPIDocument
	}
	own := []byte("servers:\n  - url: '" + strings.ReplaceAll(publicURL, "'", "''") + "'\n    description: This server (its --public-url)\n")
	return bytes.Replace(openAPIDocument, devServers, own, 1)
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", OpenAPIContentType)
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(s.openAPIDoc)
}

//go:embed favicon.ico
var favicon []byte

// faviconICO answers browsers' unasked-for /favicon.ico (a 404 there is
// noise in every access log and a best-practice failure).
func (s *Server) faviconICO(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "image/x-icon")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	_, _ = w.Write(favicon)
}

// recordingMux is the server's ServeMux, remembering every pattern it is
// given: whatever registers a route (routes, the reset page through
// Handle), the OpenAPI round trip sees it.
type recordingMux struct {
	*http.ServeMux
	mu       sync.Mutex
	patterns []string
}

func newRecordingMux() *recordingMux { return &recordingMux{ServeMux: http.NewServeMux()} }

func (m *recordingMux) Handle(pattern string, h http.Handler) {
	m.ServeMux.Handle(pattern, h)
	m.mu.Lock()
	m.patterns = append(m.patterns, pattern)
	m.mu.Unlock()
}

func (m *recordingMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// Patterns lists every registered mux pattern ("METHOD /path/{var}"),
// sorted: what the OpenAPI document must describe.
func (s *Server) Patterns() []string {
	s.mux.mu.Lock()
	defer s.mux.mu.Unlock()
	return slices.Sorted(slices.Values(s.mux.patterns))
}
