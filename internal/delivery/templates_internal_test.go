package delivery

import (
	"testing"
	"testing/fstest"
	"time"
)

func TestParseTemplatesRejectsBrokenFiles(t *testing.T) {
	t.Parallel()
	good := fstest.MapFS{}
	for _, key := range templateKeys() {
		good["templates/"+key+".tmpl"] = &fstest.MapFile{Data: []byte("{{.DisplayName}}")}
	}
	if _, err := parseTemplates(good); err != nil {
		t.Fatalf("parseTemplates(good): %v", err)
	}

	tests := map[string]func(fstest.MapFS){
		"missing file": func(fs fstest.MapFS) { delete(fs, "templates/otp.sms.text.tmpl") },
		"syntax error": func(fs fstest.MapFS) {
			fs["templates/reset_link.email.html.tmpl"] = &fstest.MapFile{Data: []byte("<p>{{.Link</p>")}
		},
		"unknown field": func(fs fstest.MapFS) {
			fs["templates/password_changed.email.text.tmpl"] = &fstest.MapFile{Data: []byte("{{.Password}}")}
		},
	}
	for name, breakIt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fs := fstest.MapFS{}
			for k, v := range good {
				fs[k] = v
			}
			breakIt(fs)
			if _, err := parseTemplates(fs); err == nil {
				t.Error("parseTemplates: want error, got nil")
			}
		})
	}
}

// TestEmbeddedTemplatesParse is what makes DefaultTemplates' panic
// unreachable in a build that passed its tests.
func TestEmbeddedTemplatesParse(t *testing.T) {
	t.Parallel()
	if _, err := parseTemplates(templateFiles); err != nil {
		t.Fatalf("embedded templates: %v", err)
	}
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0 seconds"},
		{-time.Minute, "0 seconds"},
		{time.Second, "1 second"},
		{45 * time.Second, "45 seconds"},
		{time.Minute, "1 minute"},
		{90 * time.Second, "1 minute"},
		{10 * time.Minute, "10 minutes"},
		{59*time.Minute + 59*time.Second, "59 minutes"},
		{60 * time.Minute, "60 minutes"},
		{90 * time.Minute, "90 minutes"},
		{2 * time.Hour, "2 hours"},
		{24 * time.Hour, "24 hours"},
		{25*time.Hour + time.Minute, "1501 minutes"},
		{48 * time.Hour, "2 days"},
		{7 * 24 * time.Hour, "7 days"},
	}
	for _, tc := range tests {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
