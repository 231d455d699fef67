package app_test

import (
	"bytes"
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Erasure (SPEC §12): after DELETE …?erase=true, no byte of the database
// (SQLite: the file, its WAL and shared memory; PostgreSQL: every row) holds
// the user's id, username, contacts or facts, though the user went through
// a link reset, an SMS code, failed password checks and self-service by
// username; the audit trail still shows one (pseudonymous) person's
// actions, and the same attempt without erase=true leaves the id behind.
func TestEraseLeavesNoTraceOfTheUser(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	tok := h.admin()
	const (
		id       = "cust-8472-zq"
		username = "zelda.quimby"
		email    = "zelda.quimby@example.com"
		phone    = "+14155550187"
		dob      = "1961-07-14"
	)
	h.putUser(tok, "acme", id, map[string]any{"username": username, "email": email, "phone": phone,
		"password": "an old long passphrase", "facts": map[string]string{"dateOfBirth": dob}})
	h.putUser(tok, "acme", "keeper", map[string]any{"username": "keeper", "email": "keeper@example.com"})
	h.resetLink(tok, "acme", id)
	h.resetLink(tok, "acme", "keeper")
	if r := h.sendOTP(tok, "acme", id, h.contactMethods(tok, "acme", id)["sms"]); r.Status != 202 {
		t.Fatalf("send otp: %d %s", r.Status, r.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.sms.Wait(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		h.do("POST", P+"/institutions/acme/users/"+id+"/password/verify", tok, map[string]string{"password": "wrong guess here"})
	}
	h.verifyOTP("acme", map[string]string{"username": username, "otp": "000000"})
	h.do("POST", "/api/Authorize/SendResetPassword", "", map[string]string{"institutionId": "acme", "username": username})

	for _, c := range []struct{ name, query string }{{"erase twice", "?erase=true&erase=true"}, {"erase=yes", "?erase=yes"}} {
		if r := h.do("DELETE", P+"/institutions/acme/users/"+id+c.query, tok, nil); r.Status != 400 {
			t.Errorf("%s: %d", c.name, r.Status)
		}
	}
	other := h.client("other", "institution-users:manage")
	if r := h.do("DELETE", P+"/institutions/acme/users/"+id+"?erase=true", other, nil); r.Status != 404 {
		t.Errorf("another institution's client erasing: %d", r.Status)
	}
	if r := h.do("DELETE", P+"/institutions/acme/users/"+id+"?erase=true", tok, nil); r.Status != 204 {
		t.Fatalf("erase: %d %s", r.Status, r.Body)
	}
	if r := h.do("DELETE", P+"/institutions/acme/users/"+id+"?erase=true", tok, nil); r.Status != 404 {
		t.Errorf("erasing again: %d", r.Status)
	}
	recs := h.pageAudit(tok, "acme", url.Values{})
	pseud := ""
	for _, r := range recs {
		if r.Action == "user.delete" && r.Outcome == "erased" {
			pseud = r.UserID
		}
	}
	if !strings.HasPrefix(pseud, "erased-") {
		t.Fatalf("no user.delete erased record: %+v", recs)
	}
	n := 0
	for _, r := range recs {
		if r.UserID == pseud {
			n++
		}
	}
	if n < 5 {
		t.Errorf("only %d audit records carry the pseudonym; the trail should still read as one person's", n)
	}

	// The keeper, deleted without erase, stays named in the audit trail.
	if r := h.do("DELETE", P+"/institutions/acme/users/keeper", tok, nil); r.Status != 204 {
		t.Fatal(r.Status)
	}
	h.stop()
	contents := databaseContents(t, h.dbPath)
	keeper := false
	for f, b := range contents {
		for _, secret := range []string{id, username, email, phone, "4155550187", dob, "zelda"} {
			if i := bytes.Index(b, []byte(secret)); i >= 0 {
				t.Errorf("%q still in %s after the erasure: %q", secret, filepath.Base(f), b[max(0, i-80):min(len(b), i+80)])
			}
		}
		keeper = keeper || strings.Contains(string(b), "keeper")
	}
	if !keeper {
		t.Error("a plain delete erased too: the scan cannot tell")
	}
}
