// Package mailtest provides real carriers for tests: an SMTP server on
// loopback and a fake of the Twilio Messages API, both recording what they
// accept and able to fail on demand. It is imported only from tests, but it
// is an ordinary package so every package's integration tests can share it.
package mailtest

import (
	"context"
	"net/url"
	"strings"
	"sync"
)

// recorder collects items (mails, SMS) and lets tests wait for them without
// sleeping, and holds the injected failures.
type recorder[T any] struct {
	mu      sync.Mutex
	items   []T
	changed chan struct{} // closed and replaced on every add
	failN   int
	failRes int
}

func newRecorder[T any]() *recorder[T] {
	return &recorder[T]{changed: make(chan struct{})}
}

// add records item and returns how many items there are now.
func (r *recorder[T]) add(item T) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.items = append(r.items, item)
	close(r.changed)
	r.changed = make(chan struct{})
	return len(r.items)
}

func (r *recorder[T]) all() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]T, len(r.items))
	copy(out, r.items)
	return out
}

func (r *recorder[T]) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.items)
}

func (r *recorder[T]) wait(ctx context.Context, n int) ([]T, error) {
	for {
		r.mu.Lock()
		if len(r.items) >= n {
			out := make([]T, len(r.items))
			copy(out, r.items)
			r.mu.Unlock()
			return out, nil
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return r.all(), ctx.Err()
		case <-changed:
		}
	}
}

func (r *recorder[T]) failNext(n, result int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failN, r.failRes = n, result
}

// takeFailure consumes one injected failure, if any is left.
func (r *recorder[T]) takeFailure() (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failN <= 0 {
		return 0, false
	}
	r.failN--
	return r.failRes, true
}

// queryValue escapes v for our hand-parsed query strings, where '+' is a
// literal plus: only what would break the query is escaped, so
// "+15550001111" and "noreply@bank.example" stay readable.
func queryValue(v string) string {
	s := url.QueryEscape(v)
	return strings.NewReplacer("+", "%20", "%2B", "+", "%40", "@").Replace(s)
}
