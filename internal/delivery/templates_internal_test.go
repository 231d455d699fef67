package delivery

import (
	"testing"
	"testing/fstest"
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
