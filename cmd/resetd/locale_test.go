package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/resetd/resetd/internal/app"
)

// userLocale is the locale the directory holds for a user.
func userLocale(t *testing.T, db, institution, username string) string {
	t.Helper()
	a, err := app.Open(context.Background(), app.Config{DB: db, SecretKey: testKey, Command: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	us, err := a.Reset.FindUsers(context.Background(), institution, username)
	if err != nil || len(us) != 1 {
		t.Fatalf("find %s: %v %v", username, us, err)
	}
	return us[0].Locale
}

// The locale column of user import and --locale of user put: stored in
// canonical case, kept when empty (unless --replace), a malformed tag
// rejected by line number; a bad --locale exits before the database is
// opened.
func TestUserLocaleFromTheCommandLine(t *testing.T) {
	t.Parallel()
	dir, db, k := acmeDB(t)
	write := func(name, text string) string { return writeFile(t, dir, name, text) }
	csv := write("users.csv", "userId,username,email,phone,locale\n"+
		"u1,alice,alice@example.com,,fr-ca\n"+
		"u2,bob,bob@example.com,,fr_FR\n"+
		"u3,carol,carol@example.com,,\n")
	code, out, errOut := runCLI(t, "", append([]string{"user", "import", "--institution", "acme", csv}, k...)...)
	if code == 0 || !strings.Contains(errOut, "line 3 rejected") || !strings.Contains(errOut, "BCP 47") {
		t.Errorf("import with a malformed locale: exit %d\n%s%s", code, out, errOut)
	}
	if got := userLocale(t, db, "acme", "alice"); got != "fr-CA" {
		t.Errorf("alice's locale %q, want fr-CA", got)
	}
	if got := userLocale(t, db, "acme", "carol"); got != "" {
		t.Errorf("carol's locale %q, want none", got)
	}
	// An empty cell keeps the stored locale; --replace clears it.
	keep := write("keep.csv", "userId,username,email,phone,locale\nu1,alice,alice@example.com,,\n")
	okCLI(t, "", append([]string{"user", "import", "--institution", "acme", keep}, k...)...)
	if got := userLocale(t, db, "acme", "alice"); got != "fr-CA" {
		t.Errorf("an empty cell changed the locale to %q", got)
	}
	okCLI(t, "", append([]string{"user", "import", "--institution", "acme", keep, "--replace"}, k...)...)
	if got := userLocale(t, db, "acme", "alice"); got != "" {
		t.Errorf("--replace left the locale %q", got)
	}

	okCLI(t, "", append([]string{"user", "put", "u3", "--institution", "acme", "--locale", "de-AT"}, k...)...)
	okCLI(t, "", append([]string{"user", "put", "u3", "--institution", "acme", "--email", "c@example.com"}, k...)...)
	if got := userLocale(t, db, "acme", "carol"); got != "de-AT" {
		t.Errorf("carol's locale %q after put --locale de-AT and a put without it", got)
	}
	fresh := "sqlite:" + filepath.Join(dir, "never.db")
	code, _, errOut = runCLI(t, "", "user", "put", "u9", "--institution", "acme", "--locale", "english!", "--db", fresh, "--secret-key", testKey)
	if code == 0 || !strings.Contains(errOut, "locale") {
		t.Errorf("put --locale english!: exit %d %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "never.db")); err == nil {
		t.Error("a bad --locale created the database")
	}
	okCLI(t, "", append([]string{"user", "put", "u3", "--institution", "acme", "--locale", ""}, k...)...)
	if got := userLocale(t, db, "acme", "carol"); got != "" {
		t.Errorf("--locale '' left %q", got)
	}
}
