package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/resetd/resetd/internal/queue"
	"github.com/resetd/resetd/internal/store"
	"github.com/resetd/resetd/internal/store/sqlite"
	"github.com/resetd/resetd/internal/store/storetest"
)

// TestConformance runs the suite every backend passes (PostgreSQL runs
// the same one), each test on a fresh database file.
func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, o queue.Options) (store.Store, storetest.Queue) {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "resetd.db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		o.Poll = true
		q, err := queue.Attach(s, o)
		if err != nil {
			t.Fatal(err)
		}
		return store.Of(s, s, s, s), q
	})
}
