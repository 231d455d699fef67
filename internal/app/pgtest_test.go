package app_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/resetd/resetd/internal/store/postgres/pgtest"
)

// The integration suite runs on SQLite, then, when RESETD_TEST_POSTGRES is
// set, all over again on PostgreSQL: the very same tests, each harness on a
// database of its own, created for the test and dropped after it. No test
// is written twice, and the two backends cannot drift apart unnoticed.

// onPostgres is true during the second run of the suite.
var onPostgres atomic.Bool

func TestMain(m *testing.M) {
	code := m.Run()
	if pgtest.Enabled() {
		fmt.Printf("=== the integration suite again, on PostgreSQL (%s)\n", pgtest.Env)
		onPostgres.Store(true)
		code = max(code, m.Run())
	}
	os.Exit(code)
}

// TestSuiteOnPostgreSQL says loudly when the suite ran on SQLite only (and
// fails so under RESETD_REQUIRE_ALL=1).
func TestSuiteOnPostgreSQL(t *testing.T) {
	pgtest.AdminURL(t)
	if !onPostgres.Load() {
		t.Skip("this run is on SQLite; the suite runs again on PostgreSQL next")
	}
}

// harnessDBs remembers each test's PostgreSQL database, so a harness that
// restarts finds its data again.
var harnessDBs sync.Map // harness path → DSN

// harnessDB is the --db of a harness whose SQLite file would be path.
func harnessDB(t *testing.T, path string) string {
	t.Helper()
	if !onPostgres.Load() {
		return "sqlite:" + path
	}
	// Keyed by the harness's path, not by t: a scenario step (a subtest)
	// that reads or restarts the harness gets the harness's database.
	if dsn, ok := harnessDBs.Load(path); ok {
		return dsn.(string)
	}
	dsn := pgtest.NewDatabase(t)
	harnessDBs.Store(path, dsn)
	t.Cleanup(func() { harnessDBs.Delete(path) })
	u, _ := url.Parse(dsn)
	t.Logf("backend: PostgreSQL, database %s", strings.TrimPrefix(u.Path, "/"))
	return dsn
}

// databaseContents is everything the harness's database holds at rest,
// by file (SQLite: the database, its WAL and shared memory) or by table
// (PostgreSQL: each row's raw column bytes), for tests that look for
// secrets stored in clear.
func databaseContents(t *testing.T, path string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	if !onPostgres.Load() {
		files, _ := filepath.Glob(path + "*")
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[f] = b
		}
		return out
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, harnessDB(t, path))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT * FROM `+pgx.Identifier{table}.Sanitize())
		if err != nil {
			t.Fatal(err)
		}
		var b []byte
		for rows.Next() {
			for _, v := range rows.RawValues() {
				b = append(append(b, v...), '\n')
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		out["table "+table] = b
	}
	return out
}
