package sqlite_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
)

// openTempFiles lists the deleted files this process holds open: SQLite
// unlinks a temporary file (a statement or savepoint journal that spilled
// out of memory) as it opens it.
func openTempFiles(t *testing.T) []string {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasSuffix(target, " (deleted)") {
			out = append(out, target)
		}
	}
	return out
}

// TestJournalledPagesStayOffDisk: SQLite keeps the page images a
// statement or a savepoint may have to restore (the content before the
// change, an erased user's among them) in a journal that, past 64 KiB,
// it spills to a temporary file. That file is deleted, but its blocks on
// disk are not zeroed, which undoes secure_delete. A multi-row update of
// ~1 MiB inside a transaction that already wrote must keep them in memory.
func TestJournalledPagesStayOffDisk(t *testing.T) {
	s := openGroupStore(t)
	ctx := t.Context()
	if err := s.Update(ctx, func(tx store.Tx) error {
		if err := sqlite.ExecInUpdate(ctx, tx, `CREATE TABLE scratch (id INTEGER PRIMARY KEY, v BLOB UNIQUE)`); err != nil {
			return err
		}
		return sqlite.ExecInUpdate(ctx, tx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 256)
			INSERT INTO scratch (id, v) SELECT i, randomblob(3000) FROM n`)
	}); err != nil {
		t.Fatal(err)
	}
	var during []string
	if err := s.Update(ctx, func(tx store.Tx) error {
		// A write first, so the update below runs with a statement
		// journal (it may fail half way on the UNIQUE constraint).
		if err := sqlite.ExecInUpdate(ctx, tx, `INSERT INTO scratch (id, v) VALUES (1000, x'00')`); err != nil {
			return err
		}
		if err := sqlite.ExecInUpdate(ctx, tx, `UPDATE scratch SET v = randomblob(3000) WHERE id < 1000`); err != nil {
			return err
		}
		during = openTempFiles(t)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(during) > 0 {
		t.Fatalf("SQLite wrote journalled pages to temporary files: %v", during)
	}
}
