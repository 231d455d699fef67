package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/seal"
	"github.com/resetd/resetd/internal/store"
)

// Finding is one check of resetd doctor: what was checked, whether it
// passed, and what was found or how to fix it.
type Finding struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Diagnose checks a serve configuration without changing anything: no
// database file is created, no migration applied, no key stored, no
// message sent. Institutions names institutions whose link bases are
// checked beside the default one's.
func Diagnose(ctx context.Context, cfg Config, institutions []string) []Finding {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Addr == "" {
		cfg.Addr = config.Addr
	}
	var out []Finding
	add := func(check string, err error, ok string) {
		if err != nil {
			out = append(out, Finding{check, false, err.Error()})
			return
		}
		out = append(out, Finding{check, true, ok})
	}
	add("public-url", checkPublic(cfg), config.PublicURL(cfg.PublicURL, cfg.Addr))
	key, keyErr := checkKey(cfg.SecretKey)
	add("secret-key", keyErr, "well formed")
	add("smtp", checkSMTP(ctx, cfg), "reachable: EHLO, TLS and authentication succeeded; nothing was sent")
	if cfg.SMS == "" {
		add("sms", nil, "not set: the SMS channel is unavailable (SMS sends answer 409)")
	} else {
		_, err := delivery.NewSMSSender(cfg.SMS, cfg.HTTPClient)
		add("sms", err, "well formed")
	}

	st, err := openExisting(ctx, cfg)
	add("database", err, "reachable and migrated")
	if err != nil {
		return out
	}
	defer st.Close()
	if key != nil {
		add("key-matches-database", keyMatches(ctx, st, cfg, key), "is one the database was set up with (or opens its sealed signing keys)")
	}
	add("clock", checkClock(ctx, st, cfg.Now()), "agrees with the database's newest records")
	ids := append([]string{""}, institutions...)
	for _, id := range ids {
		name, err := checkLinkBases(ctx, st, id, cfg.Dev)
		if name == "" && err == nil {
			continue // no default institution: nothing to check
		}
		add("link-bases "+name, err, "https")
	}
	return out
}

func checkPublic(cfg Config) error {
	if cfg.PublicURL == "" {
		if cfg.Dev {
			return nil
		}
		return fmt.Errorf("not set: links would point at http://%s, which customers cannot open; set --public-url https://reset.bank.example", cfg.Addr)
	}
	if err := config.CheckBaseURL(cfg.PublicURL); err != nil {
		return err
	}
	if !cfg.Dev && !strings.HasPrefix(cfg.PublicURL, "https://") {
		return errors.New("plain http: customers' links must be https in production")
	}
	return nil
}

func checkKey(s string) (*seal.Key, error) {
	if s == "" {
		return nil, errors.New("not set: set RESETD_SECRET_KEY (make one with: openssl rand -hex 32) and keep it in your secret store")
	}
	k, err := seal.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("must be 32 bytes written as 64 hex characters or base64, or a comma-separated keyring NEW,OLD: %v", err)
	}
	return k, nil
}

func checkSMTP(ctx context.Context, cfg Config) error {
	if cfg.SMTP == "" {
		if cfg.Dev {
			return nil
		}
		return errors.New("not set: serve refuses to start without --smtp (RESETD_SMTP_URL)")
	}
	s, err := delivery.NewSMTPSender(cfg.SMTP)
	if err != nil {
		return err
	}
	defer s.Close()
	if s.From() == "" {
		return errors.New("the URL needs from=ADDRESS")
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return s.Check(ctx)
}

// pending is what a backend tells of its migrations without applying them.
type pending interface {
	Pending(ctx context.Context) (bool, error)
}

// openExisting opens the database only if it exists, without migrating,
// and says whether migrations are pending.
func openExisting(ctx context.Context, cfg Config) (store.Store, error) {
	dsn := cfg.DB
	if dsn == "" {
		dsn = config.DB
	}
	if err := checkDB(dsn); err != nil {
		return store.Store{}, err
	}
	if path, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
		path, _, _ = strings.Cut(path, "?")
		if _, err := os.Stat(path); err != nil {
			return store.Store{}, fmt.Errorf("%s does not exist: create it with resetd migrate --db %s", path, dsn)
		}
	}
	cfg.NoMigrate = true
	st, _, err := openStore(ctx, cfg, nil, nil)
	if err != nil {
		return store.Store{}, err
	}
	if err := st.Ping(ctx); err != nil {
		st.Close()
		return store.Store{}, err
	}
	if p, ok := st.Transactor.(pending); ok {
		todo, err := p.Pending(ctx)
		if err != nil {
			st.Close()
			return store.Store{}, err
		}
		if todo {
			st.Close()
			return store.Store{}, errors.New("migrations are pending: run resetd migrate")
		}
	}
	return st, nil
}

// keyMatches checks the key as every command does before it opens the
// store (the check values of SPEC §9, read-only), then, for a database
// without them, by its sealed signing keys.
func keyMatches(ctx context.Context, st store.Store, cfg Config, key *seal.Key) error {
	info, err := peekKeys(ctx, cfg.DB)
	if err != nil {
		return err
	}
	cfg.Dev = false // never plan a trial key here
	if _, err := planKey(cfg, info); err != nil {
		return fmt.Errorf("does not match: %w", err)
	}
	keys, err := st.SigningKeys(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if _, err := key.Open(k.Private, "signing-key:"+k.ID); err == nil {
			return nil
		}
	}
	if len(keys) == 0 {
		return nil // a fresh database: the first serve seals its keys under this one
	}
	return fmt.Errorf("does not match: none of the database's %d signing keys opens with it (a different RESETD_SECRET_KEY sealed them)", len(keys))
}

// checkClock compares the machine's clock with what the database has seen:
// a record from the future means this clock (or another replica's) is
// behind, which breaks expiry and rate-limit windows.
func checkClock(ctx context.Context, st store.Store, now time.Time) error {
	rs, err := st.Audit(ctx, store.AuditFilter{Limit: 1})
	if err != nil {
		return err
	}
	if len(rs) > 0 && rs[len(rs)-1].Time.After(now.Add(time.Minute)) {
		return fmt.Errorf("behind: the newest audit record is from %s, %s after this machine's time; sync the clock (NTP)",
			rs[len(rs)-1].Time.UTC().Format(time.RFC3339), rs[len(rs)-1].Time.Sub(now).Round(time.Second))
	}
	return nil
}

// checkLinkBases reads an institution's link bases ("" is the default
// institution) and refuses plain http outside --dev.
func checkLinkBases(ctx context.Context, st store.Store, id string, dev bool) (string, error) {
	var in store.Institution
	err := st.View(ctx, func(tx store.ReadTx) (err error) {
		if id == "" {
			in, err = tx.DefaultInstitution(ctx)
		} else {
			in, err = tx.Institution(ctx, id)
		}
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		if id == "" {
			return "", nil
		}
		return id, errors.New("no such institution")
	}
	if err != nil {
		return id, err
	}
	bases, err := linkBasesOf(in)
	if err != nil {
		return in.ID, err
	}
	for _, b := range bases {
		if !dev && !strings.HasPrefix(b, "https://") {
			return in.ID, fmt.Errorf("%s is plain http: customers' links must be https (resetd institution put %s --link-base https://…)", b, in.ID)
		}
	}
	return in.ID, nil
}

// linkBasesOf reads the link bases an institution's settings name (none:
// the public URL's page, which the public-url check covers).
func linkBasesOf(in store.Institution) ([]string, error) {
	var st struct {
		LinkBases []string `json:"linkBases"`
	}
	if err := json.Unmarshal(in.Settings, &st); err != nil {
		return nil, fmt.Errorf("settings unreadable: %w", err)
	}
	return st.LinkBases, nil
}
