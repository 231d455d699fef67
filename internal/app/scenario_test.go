package app_test

import (
	"strings"
	"testing"
)

// req is one HTTP request of a scenario. path may be a string or a
// func() string, body anything harness.do takes or a func() any: the
// functions are for values a scenario learns only as it runs (a token read
// from an email, an approval id). A nil bearer sends no Authorization.
type req struct {
	method string
	path   any
	bearer *string
	body   any
	hdr    []string
}

func get(path any, bearer *string) req { return req{method: "GET", path: path, bearer: bearer} }

func post(path any, bearer *string, body any, hdr ...string) req {
	return req{method: "POST", path: path, bearer: bearer, body: body, hdr: hdr}
}

func put(path any, bearer *string, body any) req {
	return req{method: "PUT", path: path, bearer: bearer, body: body}
}

func del(path any, bearer *string) req { return req{method: "DELETE", path: path, bearer: bearer} }

// step is one request of a scenario and what the client must then see.
// A step with no request only runs before and check (an email arrived, the
// clock moved).
type step struct {
	name   string
	before func(t *testing.T)
	req
	status int  // 0: any status
	retry  bool // the answer must carry Retry-After
	// problem is the suffix the problem document's type must end with.
	problem string
	check   func(t *testing.T, r response)
}

// at is the path of r, resolved now.
func (r req) at() string {
	if f, ok := r.path.(func() string); ok {
		return f()
	}
	return r.path.(string)
}

// call makes the request of r, resolving the values known only by now.
func (h *harness) call(r req) response {
	h.t.Helper()
	path := r.at()
	body := r.body
	if f, isFunc := body.(func() any); isFunc {
		body = f()
	}
	bearer := ""
	if r.bearer != nil {
		bearer = *r.bearer
	}
	return h.do(r.method, path, bearer, body, r.hdr...)
}

// run runs steps in order, each as a subtest named by the step. The
// scenario stops at the first failing step: every later step builds on
// the state the earlier ones left.
func (h *harness) run(t *testing.T, steps []step) {
	t.Helper()
	for _, s := range steps {
		if !t.Run(s.name, func(t *testing.T) { h.step(t, s) }) {
			t.FailNow()
		}
	}
}

func (h *harness) step(t *testing.T, s step) {
	t.Helper()
	// The harness's own checks (a mail that never comes) fail this step,
	// from this step's goroutine, not the scenario around it.
	parent := h.t
	h.t = t
	defer func() { h.t = parent }()
	if s.before != nil {
		s.before(t)
	}
	var r response
	if s.method != "" {
		r = h.call(s.req)
		if s.status != 0 && r.Status != s.status {
			t.Fatalf("%s %s: %d %s, want %d", s.method, s.at(), r.Status, r.Body, s.status)
		}
		if s.retry && r.Header.Get("Retry-After") == "" {
			t.Fatalf("%d without Retry-After", r.Status)
		}
		if s.problem != "" {
			if typ, _ := r.json(t)["type"].(string); !strings.HasSuffix(typ, s.problem) {
				t.Fatalf("problem type %q, want …%s: %s", typ, s.problem, r.Body)
			}
		}
	}
	if s.check != nil {
		s.check(t, r)
	}
}

// bodyHas checks that the answer's body holds every one of want.
func bodyHas(want ...string) func(t *testing.T, r response) {
	return func(t *testing.T, r response) {
		t.Helper()
		for _, w := range want {
			if !strings.Contains(string(r.Body), w) {
				t.Errorf("body lacks %s: %s", w, r.Body)
			}
		}
	}
}
