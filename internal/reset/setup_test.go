package reset_test

// Tests of each flow of the domain on a real SQLite store: what the
// Service returns, and what the store then holds (rows, audit records, the
// send jobs in the outbox). Every test builds its own store in
// t.TempDir() with setup and moves an injected clock instead of sleeping.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/queue"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
)

const (
	goodPassword = "correct horse battery staple"
	publicURL    = "https://resetd.example"
)

// clock is the injected clock: tests move time instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// cheapArgon2 keeps -race runs fast; the password package tests the real
// parameters.
var cheapArgon2 = password.Params{Memory: 1024, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16}

// bundle is one Service on its own migrated SQLite file, with the
// institutions "acme" (the default, sending as security@acme.example) and
// "other".
type bundle struct {
	ctx   context.Context
	svc   *reset.Service
	st    *sqlite.Store
	key   *seal.Key
	clock *clock
	// raw reads River's job table: the outbox the domain filled.
	raw *sql.DB
}

// maker is the client that asks for resets in these tests.
var maker = reset.Actor{ClientID: "maker", IP: "192.0.2.1"}

func setup(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "resetd.db")
	st, err := sqlite.Open(ctx, path, sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Jobs are inserted, never worked: the tests read the outbox rows.
	if _, err := queue.Attach(st, queue.Options{}); err != nil {
		t.Fatal(err)
	}
	key, err := seal.New(seal.Generate())
	if err != nil {
		t.Fatal(err)
	}
	dsn, err := sqlite.DSN(path, "", false)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	b := &bundle{ctx: ctx, st: st, key: key, raw: raw, clock: &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}}
	b.svc = reset.New(reset.Config{
		Store: st, Hasher: password.NewHasher(cheapArgon2, 0, 0), Key: key, Templates: delivery.DefaultTemplates(),
		PublicURL: publicURL, DefaultFrom: "noreply@resetd.example", Now: b.clock.Now,
	})
	if _, err := b.svc.PutInstitution(ctx, "acme", "Acme Bank", nil, []string{"security@acme.example"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.PutInstitution(ctx, "other", "Other Bank", nil, nil, false); err != nil {
		t.Fatal(err)
	}
	return b
}

func (b *bundle) putUser(t *testing.T, id string, in reset.UserInput) {
	t.Helper()
	if _, err := b.svc.PutUser(b.ctx, maker, "acme", id, in); err != nil {
		t.Fatalf("put user %s: %v", id, err)
	}
}

func (b *bundle) settings(t *testing.T, p reset.SettingsPatch) {
	t.Helper()
	if p == (reset.SettingsPatch{}) {
		return
	}
	if _, err := b.svc.UpdateSettings(b.ctx, maker, "acme", p); err != nil {
		t.Fatalf("settings: %v", err)
	}
}

// outbox is every message the domain queued, oldest first, opened with the
// server's key as the delivery worker would: from the delivery rows its
// send jobs (one per send, or a batch of the sends of one commit) name.
// The jobs themselves must carry no message, sealed or not.
func (b *bundle) outbox(t *testing.T) []delivery.Message {
	t.Helper()
	rows, err := b.raw.QueryContext(b.ctx, `SELECT kind, cast(json(args) AS text) FROM river_job WHERE kind IN (?, ?) ORDER BY id`,
		delivery.SendArgs{}.Kind(), delivery.SendBatchArgs{}.Kind())
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for rows.Next() {
		var kind, args string
		if err := rows.Scan(&kind, &args); err != nil {
			t.Fatal(err)
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(args), &fields); err != nil {
			t.Fatal(err)
		}
		allowed := map[string]bool{"delivery_id": true, "institution_id": true, "user_id": true, "webhook_url": true}
		if kind == (delivery.SendBatchArgs{}).Kind() {
			allowed = map[string]bool{"deliveries": true}
		}
		for k := range fields {
			if !allowed[k] {
				t.Errorf("a %s job carries %q: %s", kind, k, args)
			}
		}
		if kind == (delivery.SendBatchArgs{}).Kind() {
			var a delivery.SendBatchArgs
			if err := json.Unmarshal([]byte(args), &a); err != nil {
				t.Fatal(err)
			}
			for _, d := range a.Deliveries {
				ids = append(ids, d.DeliveryID)
			}
			continue
		}
		var a delivery.SendArgs
		if err := json.Unmarshal([]byte(args), &a); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, a.DeliveryID)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	var out []delivery.Message
	for _, id := range ids {
		var ref, sealed []byte
		if err := b.raw.QueryRowContext(b.ctx, `SELECT message_ref, message FROM deliveries WHERE id = ?`, id).Scan(&ref, &sealed); err != nil {
			t.Fatalf("delivery %d: %v", id, err)
		}
		m, err := delivery.OpenMessage(b.key, ref, sealed)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// write runs fn in a write transaction (the Lock* reads exist only there).
func (b *bundle) write(t *testing.T, fn func(store.Tx) error) {
	t.Helper()
	if err := b.st.Update(b.ctx, fn); err != nil {
		t.Fatal(err)
	}
}

// view reads the store in one read transaction.
func (b *bundle) view(t *testing.T, fn func(store.ReadTx) error) {
	t.Helper()
	if err := b.st.View(b.ctx, fn); err != nil {
		t.Fatal(err)
	}
}

// user is the user's row as the store holds it.
func (b *bundle) user(t *testing.T, id string) store.User {
	t.Helper()
	var u store.User
	b.view(t, func(tx store.ReadTx) (err error) {
		u, err = tx.User(b.ctx, "acme", id)
		return err
	})
	return u
}

// live reports whether the store holds tok (by its hash, the only form it
// keeps) as unused and unexpired now.
func (b *bundle) live(t *testing.T, tok string) bool {
	t.Helper()
	h := sha256.Sum256([]byte(tok))
	var err error
	b.view(t, func(tx store.ReadTx) error {
		_, err = tx.LookupToken(b.ctx, h[:], b.clock.Now())
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// actions are acme's audit records as the store holds them, as
// "action/outcome", oldest first.
func (b *bundle) actions(t *testing.T) []string {
	t.Helper()
	rs, err := b.st.Audit(b.ctx, store.AuditFilter{InstitutionID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.Action+"/"+r.Outcome)
	}
	return out
}

var (
	linkToken    = regexp.MustCompile(`/reset\?token=([A-Za-z0-9_-]{43})`)
	disputeToken = regexp.MustCompile(`/reset/dispute\?token=([A-Za-z0-9_-]{43})`)
	otpCode      = regexp.MustCompile(`\b(\d{6,10})\b`)
)

// find returns the first submatch of re in m's text, or fails the test.
func find(t *testing.T, re *regexp.Regexp, m delivery.Message) string {
	t.Helper()
	match := re.FindStringSubmatch(m.Text)
	if match == nil {
		t.Fatalf("%s message to %s lacks %s: %q", m.Kind, m.To, re, m.Text)
	}
	return match[1]
}

// kinds lists the kinds of msgs, with their channel.
func kinds(msgs []delivery.Message) []string {
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Kind+"/"+m.Channel)
	}
	return out
}

// is reports whether err is want: errors.Is for sentinels, errors.As for
// the domain's error types, err == nil for a nil want.
func is(err, want error) bool {
	var limit *reset.LimitError
	var inv *reset.InvalidError
	var pol *reset.PolicyError
	switch want.(type) {
	case nil:
		return err == nil
	case *reset.LimitError:
		return errors.As(err, &limit)
	case *reset.InvalidError:
		return errors.As(err, &inv) && inv.Field == want.(*reset.InvalidError).Field
	case *reset.PolicyError:
		return errors.As(err, &pol)
	}
	return errors.Is(err, want)
}

func ptr[T any](v T) *T { return &v }
