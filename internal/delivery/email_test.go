package delivery_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/mailtest"
)

type smtpBundle struct {
	srv    *mailtest.Server
	sender *delivery.SMTPSender
}

func setupSMTP(t *testing.T) smtpBundle {
	t.Helper()
	srv := mailtest.NewServer(t)
	sender, err := delivery.NewSMTPSender(srv.URL("noreply@demobank.example"))
	if err != nil {
		t.Fatalf("NewSMTPSender: %v", err)
	}
	t.Cleanup(func() { _ = sender.Close() })
	return smtpBundle{srv: srv, sender: sender}
}

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

const testLink = "https://reset.demobank.example/r/Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5?x=1&y=2"

func TestSMTPSenderSend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		msg      delivery.Message
		wantFrom string
		// wantFromHeader is the whole From header, when the case is about it.
		wantFromHeader string
	}{
		{
			name: "text and html",
			msg: delivery.Message{
				Channel: delivery.ChannelEmail, To: "jane@customer.example",
				Subject: "Reset your Demo Bank password",
				Text:    "Open " + testLink + " to reset.\n",
				HTML:    `<p><a href="` + strings.ReplaceAll(testLink, "&", "&amp;") + `">Reset password</a></p>`,
			},
			wantFrom: "noreply@demobank.example",
		},
		{
			name: "text only, own from",
			msg: delivery.Message{
				To: "jane@customer.example", From: "Demo Bank <security@demobank.example>",
				Subject: "Your Demo Bank password was changed", Text: "Your password was changed.\n",
			},
			wantFrom:       "security@demobank.example",
			wantFromHeader: `"Demo Bank" <security@demobank.example>`,
		},
		{
			name: "display name from the institution",
			msg: delivery.Message{
				To: "jane@customer.example", From: "security@demobank.example", FromName: "Demo Bank",
				Subject: "Your Demo Bank password was changed", Text: "Your password was changed.\n",
			},
			wantFrom:       "security@demobank.example",
			wantFromHeader: `"Demo Bank" <security@demobank.example>`,
		},
		{
			name: "non-ascii subject",
			msg: delivery.Message{
				To: "jane@customer.example", Subject: "Réinitialisez votre mot de passe — Banque Démo",
				Text: "Ouvrez " + testLink + "\n",
			},
			wantFrom: "noreply@demobank.example",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := setupSMTP(t)
			ctx := testCtx(t)
			if err := b.sender.Send(ctx, tc.msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got, err := b.srv.Wait(ctx, 1)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			m := got[0]
			if m.From != tc.wantFrom {
				t.Errorf("envelope from = %q, want %q", m.From, tc.wantFrom)
			}
			if len(m.To) != 1 || m.To[0] != tc.msg.To {
				t.Errorf("envelope to = %q, want [%q]", m.To, tc.msg.To)
			}
			if m.Subject != tc.msg.Subject {
				t.Errorf("subject = %q, want %q", m.Subject, tc.msg.Subject)
			}
			if m.Text != tc.msg.Text {
				t.Errorf("text = %q, want %q", m.Text, tc.msg.Text)
			}
			if m.HTML != tc.msg.HTML {
				t.Errorf("html = %q, want %q", m.HTML, tc.msg.HTML)
			}
			if !strings.Contains(m.Header.Get("From"), tc.wantFrom) {
				t.Errorf("From header = %q, want it to name %q", m.Header.Get("From"), tc.wantFrom)
			}
			if tc.wantFromHeader != "" && m.Header.Get("From") != tc.wantFromHeader {
				t.Errorf("From header = %q, want %q", m.Header.Get("From"), tc.wantFromHeader)
			}
			if got := m.Header.Get("Auto-Submitted"); got != "auto-generated" {
				t.Errorf("Auto-Submitted = %q, want auto-generated (RFC 3834)", got)
			}
			if id := m.Header.Get("Message-Id"); !strings.HasSuffix(id, "@demobank.example>") {
				t.Errorf("Message-ID = %q, want one in the sender's domain", id)
			}
			if _, err := m.Header.Date(); err != nil {
				t.Errorf("Date header: %v", err)
			}
		})
	}
}

func TestSMTPSenderAuth(t *testing.T) {
	t.Parallel()
	srv := mailtest.NewServer(t)
	// PLAIN over a clear-text connection is only allowed to loopback.
	sender, err := delivery.NewSMTPSender("smtp://user:secret@" + srv.Addr() + "?tls=none&from=noreply@demobank.example")
	if err != nil {
		t.Fatalf("NewSMTPSender: %v", err)
	}
	t.Cleanup(func() { _ = sender.Close() })
	ctx := testCtx(t)
	if err := sender.Send(ctx, delivery.Message{To: "jane@customer.example", Subject: "s", Text: "t"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := srv.Wait(ctx, 1); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func TestSMTPSenderServerReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code          int
		wantPermanent bool
	}{
		{code: 421, wantPermanent: false},
		{code: 451, wantPermanent: false},
		{code: 452, wantPermanent: false},
		{code: 550, wantPermanent: true},
		{code: 552, wantPermanent: true},
		{code: 553, wantPermanent: true},
		{code: 554, wantPermanent: true},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.code), func(t *testing.T) {
			t.Parallel()
			b := setupSMTP(t)
			ctx := testCtx(t)
			msg := delivery.Message{To: "jane@customer.example", Subject: "s", Text: "secret link " + testLink}

			b.srv.FailNext(1, tc.code)
			err := b.sender.Send(ctx, msg)
			if err == nil {
				t.Fatal("Send: want error, got nil")
			}
			if got := delivery.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.wantPermanent)
			}
			if !strings.HasPrefix(err.Error(), "delivery: ") {
				t.Errorf("error %q lacks the delivery: prefix", err)
			}
			if strings.Contains(err.Error(), testLink) {
				t.Errorf("error %q leaks the message body", err)
			}
			// The failed session was discarded; the next send works.
			if err := b.sender.Send(ctx, msg); err != nil {
				t.Fatalf("Send after failure: %v", err)
			}
			if n := b.srv.Count(); n != 1 {
				t.Errorf("server received %d messages, want 1", n)
			}
		})
	}
}

func TestSMTPSenderRejectsBadMessages(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	noFrom, err := delivery.NewSMTPSender("smtp://" + b.srv.Addr() + "?tls=none")
	if err != nil {
		t.Fatalf("NewSMTPSender: %v", err)
	}
	t.Cleanup(func() { _ = noFrom.Close() })
	tests := []struct {
		name   string
		sender *delivery.SMTPSender
		msg    delivery.Message
	}{
		{"bad recipient", b.sender, delivery.Message{To: "not an address", Text: "t"}},
		{"empty recipient", b.sender, delivery.Message{Text: "t"}},
		{"bad from", b.sender, delivery.Message{To: "jane@customer.example", From: "nope", Text: "t"}},
		{"no from anywhere", noFrom, delivery.Message{To: "jane@customer.example", Text: "t"}},
		{"empty body", b.sender, delivery.Message{To: "jane@customer.example", Subject: "s"}},
		{"sms channel", b.sender, delivery.Message{Channel: delivery.ChannelSMS, To: "jane@customer.example", Text: "t"}},
	}
	// Cleanup runs after the parallel subtests finish.
	t.Cleanup(func() {
		if n := b.srv.Count(); n != 0 {
			t.Errorf("server received %d messages, want 0", n)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.sender.Send(testCtx(t), tc.msg)
			if !delivery.IsPermanent(err) {
				t.Errorf("Send = %v, want a permanent error", err)
			}
		})
	}
}

func TestSMTPSenderServerDown(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	ctx := testCtx(t)
	msg := delivery.Message{To: "jane@customer.example", Subject: "s", Text: "t"}

	// Leave a session in the pool so the outage also hits a reused one.
	if err := b.sender.Send(ctx, msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	b.srv.Stop()
	for range 2 {
		err := b.sender.Send(ctx, msg)
		if err == nil {
			t.Fatal("Send with the server down: want error, got nil")
		}
		if delivery.IsPermanent(err) {
			t.Errorf("Send with the server down = %v, want a retryable error", err)
		}
	}

	b.srv.Start()
	if err := b.sender.Send(ctx, msg); err != nil {
		t.Fatalf("Send after restart: %v", err)
	}

	// A restart while a session sits idle in the pool: the dead session is
	// noticed before anything is sent, and replaced without an error.
	b.srv.Stop()
	b.srv.Start()
	if err := b.sender.Send(ctx, msg); err != nil {
		t.Fatalf("Send with a stale pooled session: %v", err)
	}
	if n := b.srv.Count(); n != 3 {
		t.Errorf("server received %d messages, want 3", n)
	}
}

func TestSMTPSenderCancelled(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := b.sender.Send(ctx, delivery.Message{To: "jane@customer.example", Subject: "s", Text: "t"})
	if err == nil || delivery.IsPermanent(err) {
		t.Errorf("Send with a cancelled context = %v, want a retryable error", err)
	}
}

func TestSMTPSenderConcurrent(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	ctx := testCtx(t)
	const workers, total = 16, 200

	jobs := make(chan int)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				errs <- b.sender.Send(ctx, delivery.Message{
					To:      fmt.Sprintf("user%03d@customer.example", i),
					Subject: fmt.Sprintf("message %03d", i),
					Text:    "hello",
				})
			}
		})
	}
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Send: %v", err)
		}
	}

	// Every Send has returned, so the server has everything it will get.
	got := b.srv.Messages()
	if len(got) != total {
		t.Fatalf("server received %d messages, want %d", len(got), total)
	}
	seen := make(map[string]int)
	for _, m := range got {
		seen[m.To[0]]++
		if want := "message " + strings.TrimSuffix(strings.TrimPrefix(m.To[0], "user"), "@customer.example"); m.Subject != want {
			t.Errorf("message to %s has subject %q, want %q", m.To[0], m.Subject, want)
		}
	}
	for i := range total {
		if to := fmt.Sprintf("user%03d@customer.example", i); seen[to] != 1 {
			t.Errorf("%s received %d times, want once", to, seen[to])
		}
	}
}

func TestSMTPSenderClose(t *testing.T) {
	t.Parallel()
	b := setupSMTP(t)
	ctx := testCtx(t)
	msg := delivery.Message{To: "jane@customer.example", Subject: "s", Text: "t"}
	if err := b.sender.Send(ctx, msg); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if err := b.sender.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.sender.Send(ctx, msg); err == nil {
		t.Error("Send after Close: want error, got nil")
	}
}
