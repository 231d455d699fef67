package password

import (
	"crypto/rand"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// varied returns n runes with no pattern: letters, digits and symbols in
// an order no rule of weak recognises.
func varied(n int) string {
	const alphabet = "q7$Lm2!vX9#tR4&pZ8*kW3%bN6^hY5"
	var b strings.Builder
	for i := range n {
		b.WriteByte(alphabet[(i*7+i/len(alphabet))%len(alphabet)])
	}
	return b.String()
}

func codes(vs []Violation) []string {
	var cs []string
	for _, v := range vs {
		cs = append(cs, v.Code)
	}
	return cs
}

func TestCheck(t *testing.T) {
	t.Parallel()
	h := setup(t)
	hash := func(pw string) string {
		t.Helper()
		s, err := h.Hash(t.Context(), pw)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	const good = "violet-tractor-harbour"
	// Newest first: good was the password two changes ago.
	history := []string{hash("older-one-is-fine"), hash(good), hash("ancient-passphrase")}
	// Check must not touch entries past p.History: a malformed one there
	// would make it return an error.
	historyWithJunkAfter := []string{hash(good), "not a phc string"}

	policy := Policy{MinLength: 12, History: 4}
	tests := []struct {
		name     string
		policy   Policy
		pw, user string
		history  []string
		want     []string // codes
	}{
		{name: "acceptable", policy: policy, pw: good, user: "alice"},
		{name: "too short", policy: policy, pw: "xkcd-936-ok", want: []string{"too_short"}},
		{name: "exactly min", policy: policy, pw: "xkcd-936-ok!"},
		{name: "runes not bytes: 12 two-byte runes", policy: policy, pw: "éàüöñçåøæßðþ"},
		{name: "runes not bytes: 11 three-byte runes", policy: policy, pw: "日本語の文字列を使う試", want: []string{"too_short"}},
		{name: "too long by default", policy: policy, pw: varied(129), want: []string{"too_long"}},
		{name: "exactly default max", policy: policy, pw: varied(128)},
		{name: "explicit max", policy: Policy{MinLength: 12, MaxLength: 16}, pw: varied(17), want: []string{"too_long"}},
		{name: "common", policy: Policy{MinLength: 8}, pw: "password", want: []string{"common"}},
		{name: "common, any case", policy: Policy{MinLength: 8}, pw: "PaSsWoRd", want: []string{"common"}},
		{name: "common and too short", policy: policy, pw: "qwerty", want: []string{"too_short", "common"}},
		{name: "contains username", policy: policy, pw: "my-name-is-Alice-ok", user: "alice", want: []string{"contains_username"}},
		{name: "contains username, unicode case", policy: policy, pw: "hello-ÅSA-and-more", user: "åsa", want: []string{"contains_username"}},
		{name: "short username ignored", policy: policy, pw: "al-is-my-nickname", user: "al"},
		{name: "empty username ignored", policy: policy, pw: good, user: ""},
		{name: "reused within history", policy: policy, pw: good, history: history, want: []string{"reused"}},
		{name: "reused, any position up to History", policy: Policy{MinLength: 12, History: 2}, pw: good, history: history, want: []string{"reused"}},
		{name: "reused beyond History is allowed", policy: Policy{MinLength: 12, History: 1}, pw: good, history: history},
		{name: "History 0 checks nothing", policy: Policy{MinLength: 12}, pw: good, history: history},
		{name: "entries past History are not read", policy: Policy{MinLength: 12, History: 1}, pw: good, history: historyWithJunkAfter, want: []string{"reused"}},
		{name: "not in history", policy: policy, pw: "fresh-new-passphrase", history: history},
		{name: "invalid UTF-8 reported alone", policy: policy, pw: "ab\xffcd", user: "abc", history: history, want: []string{"invalid"}},
		// Every cheap rule at once, and the history is not read: its
		// entry is malformed, so reading it would be an error.
		{name: "cheap refusals skip the history", policy: Policy{MinLength: 12, History: 1}, pw: "Alice", user: "ALICE", history: []string{"not a phc string"},
			want: []string{"too_short", "common", "contains_username"}},
		{name: "weak skips the history", policy: Policy{MinLength: 12, History: 1}, pw: "abcdefghijkl", history: []string{"not a phc string"},
			want: []string{"weak"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vs, err := tt.policy.Check(t.Context(), h, tt.pw, tt.user, tt.history)
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got := codes(vs); !slices.Equal(got, tt.want) {
				t.Errorf("codes = %q, want %q", got, tt.want)
			}
			if tt.want == nil && vs != nil {
				t.Errorf("Check = %#v, want nil for an acceptable password", vs)
			}
			for _, v := range vs {
				if v.Message == "" || !strings.HasSuffix(v.Message, ".") {
					t.Errorf("%s: message %q is not a sentence", v.Code, v.Message)
				}
			}
		})
	}
}

func TestCheckMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy Policy
		pw     string
		want   Violation
	}{
		{Policy{MinLength: 12}, "short-pass", Violation{Code: "too_short", Message: "Use at least 12 characters.", n: 12}},
		{Policy{MaxLength: 20}, strings.Repeat("y", 21), Violation{Code: "too_long", Message: "Use at most 20 characters.", n: 20}},
		{Policy{}, "\xc3", Violation{Code: "invalid", Message: "The password contains invalid characters."}},
	}
	for _, tt := range tests {
		t.Run(tt.want.Code, func(t *testing.T) {
			t.Parallel()
			vs, err := tt.policy.Check(t.Context(), nil, tt.pw, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(vs) != 1 || vs[0] != tt.want {
				t.Errorf("Check = %+v, want [%+v]", vs, tt.want)
			}
		})
	}
}

func TestCheckErrors(t *testing.T) {
	t.Parallel()
	h := setup(t)
	stored, err := h.Hash(t.Context(), "something-else-entirely")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		h       *Hasher
		history []string
		want    error // nil: any error
	}{
		{name: "malformed entry", h: h, history: []string{"$argon2id$v=19$garbage"}, want: ErrInvalidHash},
		{name: "no hasher", h: nil, history: []string{stored}},
		{name: "busy", h: func() *Hasher {
			busy := NewHasher(cheapParams, 1, 1)
			holdSlot(t, busy)
			return busy
		}(), history: []string{stored}, want: ErrBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vs, err := Policy{MinLength: 12, History: 4}.Check(t.Context(), tt.h, "a-good-long-passphrase", "", tt.history)
			if err == nil || vs != nil {
				t.Fatalf("Check = %v, %v; want nil and an error", vs, err)
			}
			if !strings.HasPrefix(err.Error(), "password: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	t.Parallel()
	const notPattern = "Not a pattern (repeats, sequences, keyboard rows) or mostly your name or the bank's"
	tests := []struct {
		policy Policy
		want   []string
	}{
		{Policy{MinLength: 12, History: 4}, []string{
			"At least 12 characters", "At most 128 characters", "Not a commonly used password", notPattern,
			"Must not contain your username", "Must differ from your last 4 passwords",
		}},
		{Policy{MinLength: 1, MaxLength: 64, History: 1}, []string{
			"At least 1 character", "At most 64 characters", "Not a commonly used password", notPattern,
			"Must not contain your username", "Must differ from your last password",
		}},
		{Policy{}, []string{
			"At most 128 characters", "Not a commonly used password", notPattern, "Must not contain your username",
		}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.want, "/"), func(t *testing.T) {
			t.Parallel()
			if got := tt.policy.Describe(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Describe() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsCommon(t *testing.T) {
	t.Parallel()
	if n := CommonCount(); n < 40_000 {
		t.Errorf("CommonCount() = %d, want the whole zxcvbn list (>= 40000)", n)
	}
	tests := []struct {
		pw   string
		want bool
	}{
		{"123456", true},
		{"password", true},
		{"qwerty", true},
		{"Password", true},
		{"QWERTY", true},
		{"password1", true},
		{"Password1", true},
		{"iloveyou", true},
		{"#name?", true}, // a real entry that looks like a comment
		{"# source: zxcvbn passwords.txt (Dropbox, MIT license)", false},
		{"", false},
		{"password ", false}, // exact match only
		{rand.Text()[:20], false},
	}
	for _, tt := range tests {
		t.Run(tt.pw, func(t *testing.T) {
			t.Parallel()
			if got := IsCommon(tt.pw); got != tt.want {
				t.Errorf("IsCommon(%q) = %v, want %v", tt.pw, got, tt.want)
			}
		})
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("correct horse battery staple", "alice")
	f.Add("password", "")
	f.Add("\xff\xfe", "\xff")
	f.Add("日本語のパスワードです", "日本語")
	f.Add(strings.Repeat("a", 200), "aaa")
	f.Add("İstanbul-ıi-ǅ", "İST")
	known := []string{"invalid", "too_short", "too_long", "common", "weak", "contains_username", "reused"}
	policy := Policy{MinLength: 12, MinStrength: 3, Context: Context{Email: "a.b@example.com", InstitutionID: "acme", InstitutionName: "Demo Bank"}}
	f.Fuzz(func(t *testing.T, pw, user string) {
		vs, err := policy.Check(t.Context(), nil, pw, user, nil)
		if err != nil {
			t.Fatalf("Check without history: %v", err)
		}
		for _, v := range vs {
			if !slices.Contains(known, v.Code) || v.Message == "" {
				t.Fatalf("unexpected violation %+v", v)
			}
		}
		if invalid := slices.Contains(codes(vs), "invalid"); invalid == utf8.ValidString(pw) {
			t.Fatalf("valid UTF-8 %v, violations %q", utf8.ValidString(pw), codes(vs))
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	policy := Policy{MinLength: 12, History: 4}
	ctx := b.Context()
	CommonCount() // parse the list outside the timed loop
	b.ReportAllocs()
	for b.Loop() {
		if _, err := policy.Check(ctx, nil, "violet-tractor-harbour", "alice", nil); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAssessReturnsMatchedLegacyEntry: a reused password matching an
// imported bcrypt entry is refused, and the entry is returned so the caller
// can upgrade it.
func TestAssessReturnsMatchedLegacyEntry(t *testing.T) {
	t.Parallel()
	h := setup(t)
	const pw = "violet-tractor-harbour"
	legacy, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	other, err := h.Hash(t.Context(), "something-else-entirely")
	if err != nil {
		t.Fatal(err)
	}
	history := []string{other, string(legacy)}
	vs, matched, err := Policy{History: 4}.Assess(t.Context(), h, pw, "alice", history)
	if err != nil || len(vs) != 1 || vs[0].Code != "reused" || matched != string(legacy) {
		t.Fatalf("Assess = %v, %q, %v; want [reused], the bcrypt entry, nil", vs, matched, err)
	}
	vs, matched, err = Policy{History: 4}.Assess(t.Context(), h, "a-new-one-never-used", "alice", history)
	if err != nil || len(vs) != 0 || matched != "" {
		t.Fatalf("Assess(new) = %v, %q, %v; want none, \"\", nil", vs, matched, err)
	}
}
