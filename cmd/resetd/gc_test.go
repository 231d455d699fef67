package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	tuneRuntime = false // the in-process servers of these tests share the test's runtime
	os.Exit(m.Run())
}

func TestGCSettings(t *testing.T) {
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1], true
				}
			}
			return "", false
		}
	}
	percent, limit, ok := gcSettings(env(), 80<<20)
	if !ok || percent != 400 || limit != (192+80)<<20 {
		t.Errorf("no GOGC, no GOMEMLIMIT: %d, %d, %v; want 400, %d, true", percent, limit, ok, (192+80)<<20)
	}
	for _, kv := range [][]string{{"GOGC", "100"}, {"GOGC", ""}, {"GOMEMLIMIT", "1GiB"}, {"GOGC", "off", "GOMEMLIMIT", "2GiB"}} {
		if _, _, ok := gcSettings(env(kv...), 80<<20); ok {
			t.Errorf("%v: tuned anyway; the operator's setting must stand", kv)
		}
	}
}

// TestServeTunesGCUnlessTheOperatorDid reads the settings a real resetd
// serve runs with from its own /metrics.
func TestServeTunesGCUnlessTheOperatorDid(t *testing.T) {
	bin := buildResetd(t)
	// Both hashers (changes and logins) default to one slot per core,
	// each holding DefaultParams' 19456 KiB while it computes.
	hashMemory := int64(2*runtime.NumCPU()) * 19456 << 10
	for _, tc := range []struct {
		name    string
		env     []string
		percent string
		limit   float64
		logged  string
	}{
		{"defaults", nil, "400", float64(192<<20 + hashMemory), "garbage collector tuned"},
		{"GOGC set", []string{"GOGC=150"}, "150", math.MaxInt64, "as set by GOGC or GOMEMLIMIT"},
		{"GOMEMLIMIT set", []string{"GOMEMLIMIT=1GiB"}, "100", 1 << 30, "as set by GOGC or GOMEMLIMIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(bin, "serve", "--dev", "--addr", "127.0.0.1:0", "--db", "sqlite:"+filepath.Join(dir, "r.db"))
			cmd.Dir = dir
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "RESETD_") && !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMEMLIMIT=") {
					cmd.Env = append(cmd.Env, kv)
				}
			}
			cmd.Env = append(cmd.Env, tc.env...)
			log := newWatched()
			cmd.Stdout, cmd.Stderr = io.Discard, log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			addr := log.waitFor(t, listening)[1]
			if !strings.Contains(log.String(), tc.logged) {
				t.Errorf("log does not say %q:\n%s", tc.logged, log.String())
			}
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got := map[string]string{}
			sc := bufio.NewScanner(resp.Body)
			sample := regexp.MustCompile(`^(go_gc_gogc_percent|go_gc_gomemlimit_bytes) (\S+)$`)
			for sc.Scan() {
				if m := sample.FindStringSubmatch(sc.Text()); m != nil {
					got[m[1]] = m[2]
				}
			}
			if got["go_gc_gogc_percent"] != tc.percent {
				t.Errorf("go_gc_gogc_percent = %q, want %s", got["go_gc_gogc_percent"], tc.percent)
			}
			var limit float64
			if _, err := fmt.Sscan(got["go_gc_gomemlimit_bytes"], &limit); err != nil || limit != tc.limit {
				t.Errorf("go_gc_gomemlimit_bytes = %q, want %.0f", got["go_gc_gomemlimit_bytes"], tc.limit)
			}
		})
	}
}
