package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// The shell runs resetd with COMP_LINE set; resetd answers with the
// commands and flags that fit, from the same command tree it parses.
func TestShellCompletion(t *testing.T) {
	cases := []struct {
		line string
		want []string
		not  []string
	}{
		{"resetd us", []string{"user"}, []string{"serve"}},
		{"resetd user ", []string{"put", "import", "state", "unlock"}, []string{"serve"}},
		{"resetd serve --sm", []string{"--smtp", "--sms"}, []string{"--db"}},
	}
	for _, c := range cases {
		t.Run(c.line, func(t *testing.T) {
			t.Setenv("COMP_LINE", c.line)
			t.Setenv("COMP_POINT", "")
			var out, errOut bytes.Buffer
			if code := run(context.Background(), nil, strings.NewReader(""), &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			words := strings.Fields(out.String())
			for _, w := range c.want {
				if !contains(words, w) {
					t.Errorf("completing %q: %q lacks %s", c.line, words, w)
				}
			}
			for _, w := range c.not {
				if contains(words, w) {
					t.Errorf("completing %q: %q offers %s", c.line, words, w)
				}
			}
		})
	}
	t.Run("the script", func(t *testing.T) {
		for _, shell := range []string{"bash", "zsh"} {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), []string{"completion", shell}, strings.NewReader(""), &out, &errOut); code != 0 {
				t.Fatalf("completion %s: exit %d %s", shell, code, errOut.String())
			}
			if !strings.Contains(out.String(), "complete -o default -C '") || !strings.HasSuffix(strings.TrimSpace(out.String()), "resetd") {
				t.Errorf("completion %s printed %q", shell, out.String())
			}
		}
		var out, errOut bytes.Buffer
		if code := run(context.Background(), []string{"completion", "fish"}, strings.NewReader(""), &out, &errOut); code == 0 {
			t.Error("completion fish: exit 0, want a refusal")
		}
	})
}

func contains(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}
