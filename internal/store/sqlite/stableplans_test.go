package sqlite_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
)

// plan is what EXPLAIN QUERY PLAN says of q with args bound.
func plan(t *testing.T, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		out = append(out, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "; ")
}

// TestPlansDoNotDependOnBoundValues: on every connection of the store a
// statement's plan is fixed when it is prepared. SQLite would otherwise
// look at a bound LIKE pattern (and a bound LIMIT, as in River's fetch)
// to plan, and prepare the statement again each time other values are
// bound. A prefix pattern bound to LIKE is the visible case: planned with
// its value, the query searches the index; planned without it, it scans.
func TestPlansDoNotDependOnBoundValues(t *testing.T) {
	s := openGroupStore(t)
	ctx := t.Context()
	if err := s.Update(ctx, func(tx store.Tx) error {
		if err := sqlite.ExecInUpdate(ctx, tx, `CREATE TABLE scratch_names (name TEXT COLLATE NOCASE)`); err != nil {
			return err
		}
		return sqlite.ExecInUpdate(ctx, tx, `CREATE INDEX scratch_names_name ON scratch_names (name)`)
	}); err != nil {
		t.Fatal(err)
	}
	const q = `SELECT name FROM scratch_names WHERE name LIKE ?`
	write, read := sqlite.Pools(s)
	for name, db := range map[string]*sql.DB{"write": write, "read": read} {
		if got := plan(t, db, strings.Replace(q, "?", "'abc%'", 1)); !strings.Contains(got, "USING COVERING INDEX scratch_names_name") {
			t.Fatalf("%s connection: a literal prefix should search the index, plan: %s", name, got)
		}
		if got := plan(t, db, q, "abc%"); strings.Contains(got, "INDEX") {
			t.Errorf("%s connection: the plan used the bound value: %s", name, got)
		}
	}
}
