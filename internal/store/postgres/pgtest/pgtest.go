// Package pgtest gives tests a real PostgreSQL database of their own. The
// server is named by RESETD_TEST_POSTGRES (the URL of a database whose
// role may CREATE DATABASE); each test gets a fresh, empty database that
// is dropped when it ends. Without the variable the test is skipped with
// a loud reason, or fails when RESETD_REQUIRE_ALL=1 (CI). It is imported
// only from tests, but is an ordinary package so every package's tests
// can share it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Env names the admin database URL.
const Env = "RESETD_TEST_POSTGRES"

// Prefix starts the name of every database this package creates, so a
// crashed run's leftovers are easy to find and drop.
const Prefix = "resetd_test_"

// AdminURL returns RESETD_TEST_POSTGRES, or skips (fails under
// RESETD_REQUIRE_ALL=1) when it is unset.
func AdminURL(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		how := "set " + Env + "=postgres://USER:PASS@127.0.0.1:5432/DB?sslmode=disable (a role with CREATEDB; see README)"
		if os.Getenv("RESETD_REQUIRE_ALL") == "1" {
			t.Fatal("PostgreSQL tests cannot run and RESETD_REQUIRE_ALL=1: " + how)
		}
		t.Skip("PostgreSQL tests skipped: " + how)
	}
	return dsn
}

// Enabled reports whether PostgreSQL tests can run here.
func Enabled() bool { return os.Getenv(Env) != "" }

// NewDatabase creates an empty database and returns its URL (the admin
// URL with the database name replaced); it is dropped, with any session
// still connected to it, when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminURL(t)
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", Env)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := Prefix + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	exec(ctx, t, admin, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drop(ctx, t, admin, name)
	})
	u.Path = "/" + name
	return u.String()
}

func exec(ctx context.Context, t testing.TB, dsn, sql string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", Env, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// drop drops a test's database. Sessions a test left behind (a replica it
// killed, a pool still closing) are ended first; DROP DATABASE … WITH
// (FORCE) would need the pg_signal_backend role for autovacuum's workers,
// which a plain DROP ends by itself.
func drop(ctx context.Context, t testing.TB, admin, name string) {
	t.Helper()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("pgtest: connect to %s: %v", Env, err)
		return
	}
	defer conn.Close(ctx)
	for attempt := 0; ; attempt++ {
		_, err = conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
			WHERE datname = $1 AND pid <> pg_backend_pid() AND usename = current_user`, name)
		if err == nil {
			_, err = conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize())
		}
		var pe *pgconn.PgError
		if err == nil || attempt == 20 || !errors.As(err, &pe) || pe.Code != "55006" { // object_in_use
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // a terminated session takes a moment to go
		}
	}
	if err != nil {
		t.Errorf("pgtest: drop database %s: %v", name, err)
	}
}
