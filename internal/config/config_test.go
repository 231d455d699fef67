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
