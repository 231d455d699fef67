package reset

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store/sqlite"
)

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Issue 15: 300 PUTs of distinct 60 KB templates took resetd from 45 to
// 554 MiB, never freed. Now parsed overrides live in a bounded LRU, so a
// tenant changing its templates 1,000 times leaves the heap where it was,
// give or take the cache's 8 MiB.
func TestOverrideCacheStaysBounded(t *testing.T) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				// The detector's shadow memory and a tenfold slowdown: scripts/test
				// runs this test again without -race.
				t.Skip("heap figures under the race detector measure its instrumentation")
			}
		}
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "resetd.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Store: st, Templates: delivery.DefaultTemplates(), PublicURL: "https://reset.bank.example"})
	if _, err := s.PutInstitution(ctx, "acme", "Acme Bank", nil, nil, true); err != nil {
		t.Fatal(err)
	}
	// Close to 16 KiB of placeholders and text in the HTML part, the part
	// whose parse (and html/template's escaped copy) weighs the most.
	body := strings.Repeat(`<p style="margin:0">Code {{.Code}}{{if .DisputeLink}}, or tell us it was not you{{end}}; keep it.</p>`+"\n", 200)[:15<<10]
	body = body[:strings.LastIndex(body, "\n")+1]
	put := func(i int) {
		over := map[string]string{"reset_link.email.html": fmt.Sprintf("<!-- %d -->\n%s", i, body)}
		if _, err := s.UpdateSettings(ctx, Actor{ClientID: "c"}, "acme", SettingsPatch{Templates: &over}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	for i := range 50 { // warm up: SQLite's page cache, River, the pools
		put(i)
	}
	before := heapAfterGC()
	for i := 50; i < 1050; i++ {
		put(i)
	}
	after := heapAfterGC()
	growth := int64(after) - int64(before)
	t.Logf("heap %d → %d MiB over 1,000 distinct override PUTs; %d cached", before>>20, after>>20, s.overrides.len())
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB over 1,000 distinct override PUTs, want under 64", growth>>20)
	}
	if n := s.overrides.len(); n >= 1000 {
		t.Errorf("%d overrides cached: the cache is not bounded", n)
	}
}
