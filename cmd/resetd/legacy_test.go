package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/pbkdf2"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/password"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/store"
)

// TestServeArgon2FlagsValidated: parameters argon2 cannot run, or beyond
// SPEC §13's bounds, stop serve with a message naming the parameter (no
// panic), from a flag or from the environment.
func TestServeArgon2FlagsValidated(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "a.db")
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"memory over 1 GiB", []string{"--argon2-memory", "1048577"}, nil, "memory 1048577"},
		{"memory below 8 per thread", []string{"--argon2-memory", "8", "--argon2-threads", "2"}, nil, "memory 8"},
		{"time 0", []string{"--argon2-time", "0"}, nil, "time 0"},
		{"time 11", []string{"--argon2-time", "11"}, nil, "time 11"},
		{"threads 17 from env", nil, map[string]string{"RESETD_ARGON2_THREADS": "17"}, "threads 17"},
		{"time from env", nil, map[string]string{"RESETD_ARGON2_TIME": "99"}, "time 99"},
		{"threads not a uint8", []string{"--argon2-threads", "300"}, nil, "argon2-threads"},
		{"memory not a number", []string{"--argon2-memory", "lots"}, nil, "argon2-memory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for k, v := range c.env {
				t.Setenv(k, v)
			}
			args := append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db}, c.args...)
			code, out, errOut := runCLI(t, "", args...)
			if code == 0 || !strings.Contains(errOut+out, c.want) {
				t.Errorf("exit %d, output %q; want non-zero and %q", code, errOut+out, c.want)
			}
			if strings.Contains(errOut, "panic") || strings.Contains(errOut, "goroutine") {
				t.Errorf("a panic: %s", errOut)
			}
		})
	}
}

// keycloakCredential builds a password credential as Keycloak stores and
// exports it: secretData and credentialData are JSON strings, the hash and
// salt padded standard base64. Keycloak's PBKDF2 is PBKDF2WithHmacSHA*
// over the password with the salt and hashIterations; its argon2 is the
// reference argon2 with additionalParameters; x/crypto computes both here.
func keycloakCredential(t *testing.T, algorithm string, iterations int, value, salt []byte, params map[string][]string) map[string]any {
	t.Helper()
	secret, _ := json.Marshal(map[string]any{"value": base64.StdEncoding.EncodeToString(value), "salt": base64.StdEncoding.EncodeToString(salt), "additionalParameters": map[string]any{}})
	if params == nil {
		params = map[string][]string{}
	}
	cred, _ := json.Marshal(map[string]any{"hashIterations": iterations, "algorithm": algorithm, "additionalParameters": params})
	return map[string]any{"type": "password", "userLabel": "My password", "secretData": string(secret), "credentialData": string(cred)}
}

// TestUserFromKeycloak converts a Keycloak export, imports the CSV with
// `user import`, and logs each user in: the converted hashes verify and are
// upgraded to argon2id; an algorithm resetd does not verify is reported and
// its user imported without a password.
func TestUserFromKeycloak(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "kc.db")
	salt := []byte("kc-salt-16-bytes")
	pws := map[string]string{
		"8b1f2c3d-0000-4000-8000-000000000001": "Keycloak sha256 pass",
		"8b1f2c3d-0000-4000-8000-000000000002": "Keycloak sha512 pass",
		"8b1f2c3d-0000-4000-8000-000000000003": "Keycloak argon2 pass",
	}
	users := []map[string]any{
		{"id": "8b1f2c3d-0000-4000-8000-000000000001", "username": "old.sha256", "email": "a@example.com",
			"attributes":  map[string][]string{"phoneNumber": {"+14155550101"}},
			"credentials": []any{keycloakCredential(t, "pbkdf2-sha256", 27500, pbkdf2.Key([]byte(pws["8b1f2c3d-0000-4000-8000-000000000001"]), salt, 27500, 64, sha256.New), salt, nil)}},
		{"id": "8b1f2c3d-0000-4000-8000-000000000002", "username": "new.sha512", "email": "b@example.com",
			"credentials": []any{keycloakCredential(t, "pbkdf2-sha512", 210000, pbkdf2.Key([]byte(pws["8b1f2c3d-0000-4000-8000-000000000002"]), salt, 210000, 64, sha512.New), salt, nil)}},
		{"id": "8b1f2c3d-0000-4000-8000-000000000003", "username": "argon2.user",
			"credentials": []any{keycloakCredential(t, "argon2", 5, argon2.IDKey([]byte(pws["8b1f2c3d-0000-4000-8000-000000000003"]), salt, 5, 7168, 1, 32), salt,
				map[string][]string{"hashLength": {"32"}, "memory": {"7168"}, "type": {"id"}, "version": {"1.3"}, "parallelism": {"1"}})}},
		{"id": "8b1f2c3d-0000-4000-8000-000000000004", "username": "sha1.user",
			"credentials": []any{keycloakCredential(t, "pbkdf2", 27500, make([]byte, 64), salt, nil)}},
		{"id": "8b1f2c3d-0000-4000-8000-000000000005", "username": "no.password"},
	}
	export, _ := json.Marshal(map[string]any{"realm": "bank", "users": users})
	exportPath := filepath.Join(dir, "realm-users-0.json")
	if err := os.WriteFile(exportPath, export, 0o600); err != nil {
		t.Fatal(err)
	}

	code, csvOut, errOut := runCLI(t, "", "user", "from-keycloak", exportPath)
	if code != 1 || !strings.Contains(errOut, "8b1f2c3d-0000-4000-8000-000000000004") || !strings.Contains(errOut, `algorithm "pbkdf2"`) || !strings.Contains(errOut, "5 users, 1 passwords not converted") {
		t.Fatalf("from-keycloak: exit %d, stderr %s", code, errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v\n%s", err, csvOut)
	}
	if len(recs) != 6 || strings.Join(recs[0], ",") != "userId,username,email,phone,passwordHash" ||
		strings.Join(recs[1][:4], ",") != "8b1f2c3d-0000-4000-8000-000000000001,old.sha256,a@example.com,+14155550101" ||
		!strings.HasPrefix(recs[1][4], "$pbkdf2-sha256$i=27500,l=64$") ||
		!strings.HasPrefix(recs[2][4], "$pbkdf2-sha512$i=210000,l=64$") ||
		!strings.HasPrefix(recs[3][4], "$argon2id$v=19$m=7168,t=5,p=1$") ||
		recs[4][1] != "sha1.user" || recs[4][4] != "" || recs[5][4] != "" {
		t.Fatalf("CSV:\n%s", csvOut)
	}
	for _, r := range recs[1:4] {
		if err := password.CheckHash(r[4]); err != nil {
			t.Errorf("converted hash refused: %v", err)
		}
	}

	csvPath := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(csvPath, []byte(csvOut), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "", "institution", "put", "bank", "--name", "Bank", "--db", db); code != 0 {
		t.Fatalf("institution put: %s%s", out, errOut)
	}
	if code, out, errOut := runCLI(t, "", "user", "import", "--institution", "bank", csvPath, "--db", db); code != 0 || !strings.Contains(out, "5 imported, 0 rejected") {
		t.Fatalf("import: exit %d %s%s", code, out, errOut)
	}

	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DB: db, SecretKey: cliKey, Command: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for id, pw := range pws {
		if err := a.Reset.VerifyPassword(ctx, reset.Actor{ClientID: "test"}, "bank", id, pw+"!"); err != reset.ErrWrongPassword {
			t.Errorf("%s wrong password: %v, want ErrWrongPassword", id, err)
		}
		if err := a.Reset.VerifyPassword(ctx, reset.Actor{ClientID: "test"}, "bank", id, pw); err != nil {
			t.Errorf("%s right password: %v", id, err)
		}
		var u store.User
		_ = a.Store.View(ctx, func(tx store.ReadTx) (err error) { u, err = tx.User(ctx, "bank", id); return err })
		if !a.Hasher.Current(u.PasswordHash) {
			t.Errorf("%s: hash after the first login is %.30s…, want current argon2id", id, u.PasswordHash)
		}
	}
	if err := a.Reset.VerifyPassword(ctx, reset.Actor{ClientID: "test"}, "bank", "8b1f2c3d-0000-4000-8000-000000000005", ""); err != reset.ErrWrongPassword {
		t.Errorf("user without a password: %v, want ErrWrongPassword", err)
	}
}

// BenchmarkUserImportHashes measures `resetd user import` of a CSV with a
// passwordHash on every row (bcrypt, PBKDF2, scrypt and argon2id in turn)
// into a fresh SQLite file: CSV parsing, validation, batches of --batch rows.
// SPEC §13 asks for 1M rows at >= 20,000 rows/s:
//
//	RESETD_BENCH_IMPORT_ROWS=1000000 go test -run '^$' -bench UserImportHashes -benchtime 1x ./cmd/resetd
//
// (100,000 rows unless RESETD_BENCH_IMPORT_ROWS says otherwise.)
func BenchmarkUserImportHashes(b *testing.B) {
	rows := 100_000
	if s := os.Getenv("RESETD_BENCH_IMPORT_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		rows = n
	}
	salt := []byte("bench-salt-16by!")
	hashes := []string{
		"$2a$12$o6hx.Wog/wvFSkT/Bp/6DOxCtLRTDj7lm9on9suF/WaCGNVHbkfL6",
		"$pbkdf2-sha256$i=100000,l=32$1jP+5Zxpxgtee/iPxGgOz0RfE9/KJuDElP1ley4VxXc$QJxzfvdbHYBpydCbHoFg3GJEqMFULwskiuqiJctoYpI",
		"$scrypt$ln=15,r=8,p=1$" + base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)),
		"$argon2id$v=19$m=65536,t=3,p=4$" + base64.RawStdEncoding.EncodeToString(salt) + "$" + base64.RawStdEncoding.EncodeToString(make([]byte, 32)),
	}
	var buf strings.Builder
	w := csv.NewWriter(&buf)
	_ = w.Write([]string{"userId", "username", "email", "phone", "passwordHash"})
	for i := range rows {
		_ = w.Write([]string{fmt.Sprintf("u%07d", i), fmt.Sprintf("customer.%07d", i), fmt.Sprintf("customer.%07d@example.com", i), "", hashes[i%len(hashes)]})
	}
	w.Flush()
	dir := b.TempDir()
	csvPath := filepath.Join(dir, "users.csv")
	if err := os.WriteFile(csvPath, []byte(buf.String()), 0o600); err != nil {
		b.Fatal(err)
	}
	var elapsed, cpu time.Duration
	n := 0
	for b.Loop() {
		db := "sqlite:" + filepath.Join(dir, fmt.Sprintf("import%d.db", n))
		n++
		b.StopTimer()
		var out bytes.Buffer
		if code := run(context.Background(), []string{"institution", "put", "bank", "--name", "Bank", "--db", db, "--secret-key", testKey}, strings.NewReader(""), &out, &out); code != 0 {
			b.Fatalf("institution put: %s", out.String())
		}
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"user", "import", "--institution", "bank", csvPath, "--db", db, "--batch", "5000", "--secret-key", testKey}, strings.NewReader(""), &stdout, &stderr)
		elapsed += time.Since(start)
		cpu += cpuTime() - cpu0
		if code != 0 || !strings.Contains(stdout.String(), fmt.Sprintf("%d imported, 0 rejected", rows)) {
			b.Fatalf("import: exit %d %s%s", code, stdout.String(), stderr.String())
		}
	}
	b.ReportMetric(float64(rows*n)/elapsed.Seconds(), "rows/s")
	// CPU time does not count waiting for a core, so it holds up on a
	// shared machine better than rows/s (docs/PERFORMANCE.md).
	b.ReportMetric(float64(cpu.Microseconds())/float64(rows*n), "cpu-µs/row")
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
