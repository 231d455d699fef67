package password

import (
	"slices"
	"strings"
	"testing"
)

// The shapes and context words NIST SP 800-63B §5.1.1.2 says to refuse
// (SPEC §10), each refused as "weak" by a policy with no strength
// estimate, so the rules are seen to hold on their own; and passwords a
// person would choose, accepted by the default policy (strength 3).
func TestWeak(t *testing.T) {
	t.Parallel()
	demo := Context{Email: "jane.smith@example.com", InstitutionID: "demo", InstitutionName: "Demo Bank"}
	shapeOnly := Policy{MinLength: 12, Context: demo}
	defaults := Policy{MinLength: 12, History: 4, MinStrength: 3, Context: demo}
	tests := []struct {
		name   string
		policy Policy
		pw     string
		user   string
		want   []string
	}{
		{name: "whitespace only", policy: shapeOnly, pw: strings.Repeat(" ", 13), want: []string{"weak"}},
		{name: "mixed whitespace", policy: shapeOnly, pw: " \t \u3000 \t  \u00a0  \t ", want: []string{"weak"}},
		{name: "one character repeated", policy: shapeOnly, pw: "aaaaaaaaaaaa", want: []string{"weak"}},
		{name: "a unit repeated", policy: shapeOnly, pw: "xk9!xk9!xk9!", want: []string{"weak"}},
		{name: "two characters", policy: shapeOnly, pw: "abbaabababbbab", want: []string{"weak"}},
		{name: "digits in sequence, wrapping", policy: shapeOnly, pw: "123456789012", want: []string{"weak"}},
		{name: "digits descending", policy: shapeOnly, pw: "987654321098", want: []string{"weak"}},
		{name: "letters in sequence", policy: shapeOnly, pw: "abcdefghijkl", want: []string{"weak"}},
		{name: "letters in sequence, any case", policy: shapeOnly, pw: "AbCdEfGhIjKl", want: []string{"weak"}},
		{name: "two sequences", policy: shapeOnly, pw: "1234abcdefgh", want: []string{"weak"}},
		{name: "keyboard walk", policy: shapeOnly, pw: "qwertyuiopas", want: []string{"weak"}},
		{name: "keyboard walk, shifted", policy: shapeOnly, pw: "!@#$%^&*()_+", want: []string{"weak"}},
		{name: "keyboard walk backwards", policy: shapeOnly, pw: "lkjhgfdsapoi", want: []string{"weak"}},
		{name: "password twice", policy: shapeOnly, pw: "passwordpassword", want: []string{"weak"}},
		{name: "Password1234!", policy: shapeOnly, pw: "Password1234!", want: []string{"weak"}},
		{name: "the bank's name twice", policy: shapeOnly, pw: "Demo Bank Demo Bank", want: []string{"weak"}},
		{name: "the bank's name run together", policy: shapeOnly, pw: "demobank1234", want: []string{"weak"}},
		{name: "the bank's name in parts", policy: shapeOnly, pw: "BankDemo2024!", want: []string{"weak"}},
		{name: "the institution id", policy: Policy{MinLength: 12, Context: Context{InstitutionID: "acmecorp"}}, pw: "acmecorp-9876", want: []string{"weak"}},
		{name: "the email's local part", policy: shapeOnly, pw: "jane.smith.24", want: []string{"weak"}},
		{name: "the email's name parts", policy: shapeOnly, pw: "SmithJane!80", want: []string{"weak"}},
		{name: "a context word and a pattern", policy: shapeOnly, pw: "bank123456789", want: []string{"weak"}},
		{name: "username mostly", policy: shapeOnly, pw: "mallory-mallory", user: "mallory", want: []string{"weak", "contains_username"}},
		{name: "fullwidth letters are the common password they look like", policy: shapeOnly, pw: "ｐａｓｓｗｏｒｄ１２３４", want: []string{"common"}},
		{name: "too easy to guess by the estimate", policy: defaults, pw: "monkeyfootball", want: []string{"weak"}},
		{name: "estimate ignored when off", policy: shapeOnly, pw: "monkeyfootball"},

		{name: "a passphrase", policy: defaults, pw: "violet-tractor-harbour"},
		{name: "a passphrase with spaces", policy: defaults, pw: "correct horse battery staple"},
		{name: "a passphrase naming the bank once", policy: defaults, pw: "my bank is a violet tractor"},
		{name: "random characters", policy: defaults, pw: "xkcd-936-ok!Qz"},
		{name: "a passphrase in Japanese", policy: defaults, pw: "日本語のとても長い合言葉です"},
		{name: "long, estimated on its start", policy: defaults, pw: varied(120)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vs, err := tt.policy.Check(t.Context(), nil, tt.pw, tt.user, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := codes(vs); !slices.Equal(got, tt.want) {
				t.Errorf("Check(%q) codes = %q, want %q", tt.pw, got, tt.want)
			}
		})
	}
}

// NFKC: what the policy judges and what is hashed is one string, so a
// password typed in fullwidth or decomposed form verifies as its
// normalised self and counts its length as such.
func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"ｐａｓｓ", "pass"},
		{"e\u0301cole", "\u00e9cole"},
		{"ﬁne", "fine"},
		{"plain", "plain"},
		{"ab\xffcd", "ab\xffcd"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	// 12 runes once composed: 11 letters and an accent decomposed would
	// count 13 runes, "é" as 2; the composed count is what is judged.
	p := Policy{MinLength: 12, MaxLength: 12}
	decomposed := "violette\u0301-ok" // "violetté-ok", 11 runes composed
	vs, err := p.Check(t.Context(), nil, decomposed, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := codes(vs); !slices.Equal(got, []string{"too_short"}) {
		t.Errorf("decomposed %q: codes %q, want too_short (11 runes after NFKC)", decomposed, got)
	}
}
