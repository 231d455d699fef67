package config

import "testing"

func TestPublicURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, set, addr, want string
	}{
		{"unset is the listen address", "", "127.0.0.1:9000", "http://127.0.0.1:9000"},
		{"set wins", "https://reset.bank.example", "127.0.0.1:9000", "https://reset.bank.example"},
		{"trailing slashes go", "https://bank.example/r//", "", "https://bank.example/r"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := PublicURL(tc.set, tc.addr); got != tc.want {
				t.Fatalf("PublicURL(%q, %q) = %q, want %q", tc.set, tc.addr, got, tc.want)
			}
		})
	}
}

func TestCheckBaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"https", "https://reset.bank.example", true},
		{"http with port and path", "http://127.0.0.1:8080/resetd/", true},
		{"no scheme", "reset.bank.example", false},
		{"no scheme with port", "reset.bank.example:8443", false},
		{"other scheme", "ftp://reset.bank.example", false},
		{"no host", "https:///reset", false},
		{"query", "https://reset.bank.example/?a=1", false},
		{"fragment", "https://reset.bank.example/#x", false},
		{"user", "https://u:p@reset.bank.example", false},
		{"empty", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := CheckBaseURL(tc.in); (err == nil) != tc.ok {
				t.Fatalf("CheckBaseURL(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}
