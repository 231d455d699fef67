package delivery_test

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func TestWebhookURLPolicy(t *testing.T) {
	t.Parallel()
	refused := []string{
		"https://127.0.0.1/hook", "https://10.0.0.1/hook", "https://169.254.169.254/latest/meta-data",
		"https://[::1]/hook", "https://[fd00::1]/hook", "https://localhost/hook", "https://LOCALHOST./hook",
		"https://172.16.5.4/", "https://192.168.1.1/", "https://100.64.0.1/", "https://0.0.0.0/", "https://[::]/",
		"https://[fe80::1]/", "https://224.0.0.1/", "https://[ff02::1]/",
		"https://[::ffff:127.0.0.1]/", "https://[64:ff9b::a9fe:a9fe]/", "https://[2002:a00:1::]/",
		"http://93.184.215.14/hook", // public, but plain http
		"ftp://93.184.215.14/hook", "https://user:pw@93.184.215.14/", "/relative",
	}
	none := &delivery.WebhookPolicy{}
	for _, u := range refused {
		t.Run("refuses "+u, func(t *testing.T) {
			t.Parallel()
			if err := none.CheckURL(context.Background(), u); !errors.Is(err, delivery.ErrWebhookAddress) {
				t.Errorf("CheckURL(%q) = %v, want ErrWebhookAddress", u, err)
			}
		})
	}
	if err := none.CheckURL(context.Background(), "https://93.184.215.14/hook"); err != nil {
		t.Errorf("a public https address: %v", err)
	}
	allow := &delivery.WebhookPolicy{Allow: loopback}
	for _, u := range []string{"https://127.0.0.1/hook", "http://127.0.0.1:8080/hook", "https://[::1]/hook", "https://localhost/hook"} {
		if err := allow.CheckURL(context.Background(), u); err != nil {
			t.Errorf("with --webhook-allow loopback, CheckURL(%q) = %v", u, err)
		}
	}
	if err := allow.CheckURL(context.Background(), "https://10.0.0.1/hook"); err == nil {
		t.Error("--webhook-allow loopback let 10.0.0.1 through")
	}
}

func TestParseAllow(t *testing.T) {
	t.Parallel()
	got, err := delivery.ParseAllow([]string{"10.1.2.3/8", "::1", "192.168.0.7"})
	if err != nil || len(got) != 3 || got[0].String() != "10.0.0.0/8" || got[1].String() != "::1/128" || got[2].String() != "192.168.0.7/32" {
		t.Errorf("ParseAllow = %v, %v", got, err)
	}
	if _, err := delivery.ParseAllow([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParseAllow accepted a /33")
	}
}

// tlsReceiver is a TLS receiver on loopback that counts POSTs.
func tlsReceiver(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func roots(srv *httptest.Server) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(srv.Certificate())
	return p
}

// The check runs at every dial on the address the name resolved to: a
// name that resolves inside (as a rebound one would after the PUT) is
// never connected to, though the URL itself names no address.
func TestWebhookClientChecksEveryDial(t *testing.T) {
	t.Parallel()
	srv, hits := tlsReceiver(t, func(w http.ResponseWriter, r *http.Request) {})
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	strict := (&delivery.WebhookPolicy{RootCAs: roots(srv)}).Client(5 * time.Second)
	for _, u := range []string{"https://localhost" + port + "/hook", srv.URL + "/hook", "http://127.0.0.1" + port + "/hook"} {
		resp, err := strict.Post(u, "application/json", strings.NewReader("{}"))
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, delivery.ErrWebhookAddress) {
			t.Errorf("POST %s without --webhook-allow: %v, want ErrWebhookAddress", u, err)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the receiver inside got %d requests", n)
	}
	allowed := (&delivery.WebhookPolicy{Allow: loopback, RootCAs: roots(srv)}).Client(5 * time.Second)
	resp, err := allowed.Post(srv.URL+"/hook", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatalf("POST with --webhook-allow loopback: %v", err)
	}
	resp.Body.Close()
	if hits.Load() != 1 {
		t.Errorf("receiver got %d requests, want 1", hits.Load())
	}
}

func webhookJob(id int64, url, institution string) *river.Job[delivery.WebhookArgs] {
	return &river.Job[delivery.WebhookArgs]{
		JobRow: &rivertype.JobRow{ID: id, Attempt: 1},
		Args: delivery.WebhookArgs{URL: url, Event: delivery.Event{
			ID: "ev", Type: delivery.EventResetRequested, Time: time.Now(), InstitutionID: institution,
		}},
	}
}

func newWebhookWorker(t *testing.T, p *delivery.WebhookPolicy) *delivery.WebhookWorker {
	t.Helper()
	key, err := seal.New(seal.Generate())
	if err != nil {
		t.Fatal(err)
	}
	return &delivery.WebhookWorker{Key: key, Secrets: &memMeta{}, Client: p.Client(5 * time.Second), Now: time.Now, Logger: slog.New(slog.DiscardHandler)}
}

// memMeta keeps webhook secrets in memory (delivery.MetaStore).
type memMeta struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (s *memMeta) Meta(_ context.Context, key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return v, nil
}

func (s *memMeta) MetaPut(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[key] = value
	return nil
}

func (s *memMeta) MetaSetIfAbsent(_ context.Context, key string, value []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.m[key]; ok {
		return v, nil
	}
	if s.m == nil {
		s.m = map[string][]byte{}
	}
	s.m[key] = value
	return value, nil
}

func (s *memMeta) MetaPrefix(_ context.Context, prefix string) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range s.m {
		if strings.HasPrefix(k, prefix) {
			out[k] = v
		}
	}
	return out, nil
}

// A receiver answering 307 gets its one POST; the signed event never goes
// to the Location, and the attempt counts as failed (retried later).
func TestWebhookWorkerDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target, targetHits := tlsReceiver(t, func(w http.ResponseWriter, r *http.Request) {})
	redirector, hits := tlsReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+"/internal/admin", http.StatusTemporaryRedirect)
	})
	w := newWebhookWorker(t, &delivery.WebhookPolicy{Allow: loopback, RootCAs: roots(redirector)})
	err := w.Work(context.Background(), webhookJob(1, redirector.URL+"/hook", "acme"))
	if err == nil || !strings.Contains(err.Error(), "307") {
		t.Errorf("Work = %v, want a failed attempt naming the 307", err)
	}
	var cancel *rivertype.JobCancelError
	if errors.As(err, &cancel) {
		t.Error("a redirect cancelled the event instead of failing one attempt")
	}
	if hits.Load() != 1 || targetHits.Load() != 0 {
		t.Errorf("receiver got %d POSTs, redirect target %d; want 1 and 0", hits.Load(), targetHits.Load())
	}
}

// One institution's hanging receiver holds at most PerInstitution
// workers; its next event waits (snoozed, no attempt spent) while another
// institution's event goes straight out.
func TestWebhookWorkerBoundsEachInstitution(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	arrived := make(chan struct{}, 10)
	hang, _ := tlsReceiver(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	})
	fast, fastHits := tlsReceiver(t, func(w http.ResponseWriter, r *http.Request) {})
	w := newWebhookWorker(t, &delivery.WebhookPolicy{Allow: loopback, RootCAs: roots(hang)})
	w.PerInstitution = 2
	done := make(chan error, 2)
	for i := range 2 {
		go func() { done <- w.Work(context.Background(), webhookJob(int64(10+i), hang.URL, "slow")) }()
	}
	<-arrived
	<-arrived
	err := w.Work(context.Background(), webhookJob(12, hang.URL, "slow"))
	var snooze *rivertype.JobSnoozeError
	if !errors.As(err, &snooze) {
		t.Errorf("a third event of the hanging institution: %v, want it snoozed", err)
	}
	if err := w.Work(context.Background(), webhookJob(13, fast.URL, "other")); err != nil || fastHits.Load() != 1 {
		t.Errorf("another institution's event while the first hangs: %v (%d POSTs)", err, fastHits.Load())
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("released event: %v", err)
		}
	}
	if err := w.Work(context.Background(), webhookJob(14, fast.URL, "slow")); err != nil {
		t.Errorf("the institution's slots were not given back: %v", err)
	}
}
