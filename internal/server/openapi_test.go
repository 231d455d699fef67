package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/resetd/resetd/internal/auth"
	"github.com/resetd/resetd/internal/server"
)

// servedDocument fetches GET /openapi.yaml from a bare server and loads it.
func servedDocument(t *testing.T) *openapi3.T {
	t.Helper()
	srv := httptest.NewServer(server.New(server.Config{}))
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /openapi.yaml: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != server.OpenAPIContentType {
		t.Errorf("Content-Type %q, want %q", ct, server.OpenAPIContentType)
	}
	if resp.Header.Get("TransactionId") == "" {
		t.Error("no TransactionId header")
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatalf("loading the document: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	doc := servedDocument(t)
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	// Examples are validated against their schemas too (kin-openapi's default).
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the document does not validate: %v", err)
	}
}

// TestOpenAPIDocumentConventions holds the document to the rules every
// operation follows (SPEC §2, §3), so a new operation cannot forget one.
func TestOpenAPIDocumentConventions(t *testing.T) {
	t.Parallel()
	doc := servedDocument(t)
	var problems []string
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	cc := doc.Components.SecuritySchemes["clientCredentials"]
	if cc == nil || cc.Value.Flows == nil || cc.Value.Flows.ClientCredentials == nil {
		t.Fatal("no clientCredentials security scheme")
	}
	flow := cc.Value.Flows.ClientCredentials
	if flow.TokenURL != server.TokenPath {
		fail("tokenUrl %q, want %q", flow.TokenURL, server.TokenPath)
	}
	var scopes []string
	for s := range flow.Scopes {
		scopes = append(scopes, s)
	}
	if want := slices.Sorted(slices.Values(auth.AllScopes)); !slices.Equal(slices.Sorted(slices.Values(scopes)), want) {
		fail("scopes %v, want exactly %v", slices.Sorted(slices.Values(scopes)), want)
	}

	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for method, op := range item.Operations() {
			name := method + " " + path
			if !hasTransactionID(item.Parameters) && !hasTransactionID(op.Parameters) {
				fail("%s: no TransactionId header parameter", name)
			}
			if op.Security == nil {
				fail("%s: no security requirement (use [] for a public operation)", name)
			}
			secured := false
			if op.Security != nil {
				for _, req := range *op.Security {
					for _, s := range req["clientCredentials"] {
						secured = true
						if !slices.Contains(auth.AllScopes, s) {
							fail("%s: unknown scope %q", name, s)
						}
					}
				}
			}
			want := []string{"400", "500"}
			if secured {
				want = append(want, "401", "403", "404")
			}
			jsonBody := op.RequestBody != nil && op.RequestBody.Value.Content.Get("application/json") != nil
			if jsonBody {
				want = append(want, "413", "415")
				schema := op.RequestBody.Value.Content.Get("application/json").Schema.Value
				if ap := schema.AdditionalProperties.Has; ap == nil || *ap {
					fail("%s: the JSON request body must say additionalProperties: false (unknown fields get 400)", name)
				}
			}
			for _, code := range want {
				if op.Responses.Value(code) == nil {
					fail("%s: no %s response", name, code)
				}
			}
			for code, resp := range op.Responses.Map() {
				r := resp.Value
				if h := r.Headers["TransactionId"]; h == nil || !h.Value.Required {
					fail("%s %s: no required TransactionId response header", name, code)
				}
				if code[0] != '4' && code[0] != '5' {
					continue
				}
				if len(r.Content) == 0 {
					fail("%s %s: an error without a body", name, code)
				}
				if path == server.TokenPath {
					continue // RFC 6749 §5.2 errors
				}
				if r.Content.Get("application/problem+json") == nil && r.Content.Get("text/html") == nil {
					fail("%s %s: an error that is not application/problem+json", name, code)
				}
			}
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("the document breaks %d conventions:\n  %s", len(problems), strings.Join(problems, "\n  "))
	}
}

func hasTransactionID(ps openapi3.Parameters) bool {
	for _, p := range ps {
		if p.Value != nil && p.Value.In == openapi3.ParameterInHeader && p.Value.Name == "TransactionId" {
			return true
		}
	}
	return false
}

// The endpoint table of docs/API.md is generated from the document; this
// test fails when the two drift. RESETD_UPDATE_API_MD=1 rewrites it.
const (
	apiMarkdown      = "../../docs/API.md"
	apiTableBegin    = "<!-- BEGIN GENERATED from internal/server/openapi.yaml: RESETD_UPDATE_API_MD=1 go test ./internal/server -run TestAPIMarkdownTable -->"
	apiTableEnd      = "<!-- END GENERATED -->"
	apiMarkdownShort = "/a/password-reset/api/v0"
)

func TestAPIMarkdownTable(t *testing.T) {
	t.Parallel()
	doc := servedDocument(t)
	raw, err := os.ReadFile(apiMarkdown)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	begin, end := strings.Index(text, apiTableBegin), strings.Index(text, apiTableEnd)
	if begin < 0 || end < begin {
		t.Fatalf("%s lacks the generated-table markers", apiMarkdown)
	}
	want := text[:begin] + apiTableBegin + "\n" + apiTable(doc) + apiTableEnd + text[end+len(apiTableEnd):]
	if want == text {
		return
	}
	if os.Getenv("RESETD_UPDATE_API_MD") == "1" {
		if err := os.WriteFile(apiMarkdown, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("docs/API.md's endpoint table is stale; run: RESETD_UPDATE_API_MD=1 go test ./internal/server -run TestAPIMarkdownTable")
}

// apiTable renders one row per operation, grouped in the document's tag
// order.
func apiTable(doc *openapi3.T) string {
	type row struct {
		tag, path, method string
		op                *openapi3.Operation
	}
	tagOrder := map[string]int{}
	for i, tg := range doc.Tags {
		tagOrder[tg.Name] = i
	}
	methodOrder := map[string]int{"GET": 0, "POST": 1, "PUT": 2, "DELETE": 3}
	var rows []row
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			tag := ""
			if len(op.Tags) > 0 {
				tag = op.Tags[0]
			}
			rows = append(rows, row{tag, path, method, op})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if tagOrder[a.tag] != tagOrder[b.tag] {
			return tagOrder[a.tag] < tagOrder[b.tag]
		}
		if a.path != b.path {
			return a.path < b.path
		}
		return methodOrder[a.method] < methodOrder[b.method]
	})
	var b strings.Builder
	b.WriteString("| group | operation | scope | success | errors |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		path := strings.Replace(r.path, apiMarkdownShort, "P", 1)
		scope := "public"
		if r.path == server.TokenPath {
			scope = "client credentials (Basic or `client_secret_post`)"
		}
		if r.op.Security != nil {
			for _, req := range *r.op.Security {
				for _, s := range req["clientCredentials"] {
					scope = "`" + s + "`"
				}
			}
		}
		var ok, bad []string
		for code := range r.op.Responses.Map() {
			if code < "400" {
				ok = append(ok, code)
			} else {
				bad = append(bad, code)
			}
		}
		sort.Strings(ok)
		sort.Strings(bad)
		fmt.Fprintf(&b, "| %s | `%s %s`<br>%s | %s | %s | %s |\n", r.tag, r.method, path, r.op.Summary, scope, strings.Join(ok, ", "), strings.Join(bad, ", "))
	}
	return b.String()
}
