package delivery

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"maps"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"
)

// The default templates, one file per part, named "<kind>.<channel>.<part>.tmpl"
// so that a file name is also its override key.
//
//go:embed templates/*.tmpl
var templateFiles embed.FS

// defaultTemplates is the one package-level value: parsed templates never
// change after parsing (WithOverrides returns a copy), so sharing them is safe.
var defaultTemplates = sync.OnceValue(func() *Templates {
	t, err := parseTemplates(templateFiles)
	if err != nil {
		// Only a broken file in templates/ gets here, and the tests parse
		// them, so this cannot reach a running server.
		panic(err)
	}
	return t
})

// TemplateData is what a message template can use.
//
// Besides the fields, templates may call {{duration .ExpiresIn}}, which
// renders "60 minutes", "10 minutes", "2 hours" and so on.
type TemplateData struct {
	DisplayName string        // institution's display name, e.g. "Demo Bank"
	UserName    string        // email only: SMS is read on lock screens
	Link        string        // reset link (reset_link kind)
	Code        string        // OTP (otp kind)
	ExpiresIn   time.Duration // how long Link or Code stays valid
	DisputeLink string        // optional "This wasn't me" link, shown when set
	// Changed names what was replaced in a contact_changed notice:
	// "email address" or "phone number".
	Changed string
	// When and How say, in a password_changed notice, when the change was
	// made ("2006-01-02 15:04 UTC") and how: "reset link", "code" or
	// "by the bank".
	When string
	How  string
}

// Rendered is a rendered message; SMS uses Text only.
type Rendered struct{ Subject, Text, HTML string }

// Templates holds parsed templates for every kind and channel. It is
// immutable and safe for concurrent use.
type Templates struct {
	parts map[string]executor // by key, e.g. "reset_link.email.html"
}

// executor is what text/template and html/template have in common.
type executor interface {
	Execute(w io.Writer, data any) error
}

// DefaultTemplates returns the embedded default templates, parsed once.
func DefaultTemplates() *Templates { return defaultTemplates() }

// WithOverrides returns a copy of t with some parts replaced. Keys name a
// part: "reset_link.email.subject", "reset_link.email.text",
// "reset_link.email.html", "reset_link.sms.text", and the same for otp and
// password_changed. ".html" parts are html/template (auto-escaped), the rest
// text/template.
//
// Each override is parsed and test-rendered here, so an institution's broken
// template is rejected when it is set rather than when a user needs a reset.
func (t *Templates) WithOverrides(over map[string]string) (*Templates, error) {
	parts := maps.Clone(t.parts)
	for key, src := range over {
		if _, ok := t.parts[key]; !ok {
			return nil, fmt.Errorf("delivery: template override %q: unknown key (want <kind>.<channel>.<part>, e.g. reset_link.email.subject)", key)
		}
		ex, err := parseTemplate(key, src)
		if err != nil {
			return nil, err
		}
		parts[key] = ex
	}
	return &Templates{parts: parts}, nil
}

// Render renders the message of kind (KindResetLink, KindOTP,
// KindPasswordChanged) for channel (ChannelEmail, ChannelSMS).
func (t *Templates) Render(kind, channel string, d TemplateData) (Rendered, error) {
	if err := checkTemplateData(kind, channel, d); err != nil {
		return Rendered{}, err
	}
	var r Rendered
	var err error
	switch channel {
	case ChannelEmail:
		if r.Subject, err = t.exec(kind+".email.subject", d); err != nil {
			return Rendered{}, err
		}
		// A subject is one header line whatever the template or the
		// display name contain.
		r.Subject = strings.Join(strings.Fields(r.Subject), " ")
		if r.Text, err = t.exec(kind+".email.text", d); err != nil {
			return Rendered{}, err
		}
		r.Text = strings.TrimSpace(r.Text) + "\n"
		if r.HTML, err = t.exec(kind+".email.html", d); err != nil {
			return Rendered{}, err
		}
		r.HTML = strings.TrimSpace(r.HTML) + "\n"
	case ChannelSMS:
		if r.Text, err = t.exec(kind+".sms.text", d); err != nil {
			return Rendered{}, err
		}
		// Every character counts against the 160 of one SMS segment.
		r.Text = strings.TrimSpace(r.Text)
	}
	return r, nil
}

func (t *Templates) exec(key string, d TemplateData) (string, error) {
	ex, ok := t.parts[key]
	if !ok {
		return "", fmt.Errorf("delivery: template %q missing", key)
	}
	var b strings.Builder
	if err := ex.Execute(&b, d); err != nil {
		return "", fmt.Errorf("delivery: render %s: %w", key, err)
	}
	return b.String(), nil
}

// checkTemplateData catches a caller that forgot the one thing a message is
// for: a reset email without its link would still go out and look fine.
func checkTemplateData(kind, channel string, d TemplateData) error {
	if channel != ChannelEmail && channel != ChannelSMS {
		return fmt.Errorf("delivery: render: unknown channel %q", channel)
	}
	switch kind {
	case KindResetLink:
		if d.Link == "" {
			return errors.New("delivery: render reset_link: empty Link")
		}
	case KindOTP:
		if d.Code == "" {
			return errors.New("delivery: render otp: empty Code")
		}
	case KindPasswordChanged:
	case KindContactChanged:
		if d.Changed == "" {
			return errors.New("delivery: render contact_changed: empty Changed")
		}
	default:
		return fmt.Errorf("delivery: render: unknown kind %q", kind)
	}
	if d.DisplayName == "" {
		return errors.New("delivery: render: empty DisplayName")
	}
	return nil
}

// templateKeys lists every part a Templates must have.
func templateKeys() []string {
	var keys []string
	for _, kind := range []string{KindResetLink, KindOTP, KindPasswordChanged, KindContactChanged} {
		keys = append(keys,
			kind+".email.subject",
			kind+".email.text",
			kind+".email.html",
			kind+".sms.text",
		)
	}
	return keys
}

// parseTemplates reads templates/<key>.tmpl for every key from fsys.
func parseTemplates(fsys fs.FS) (*Templates, error) {
	parts := make(map[string]executor)
	for _, key := range templateKeys() {
		src, err := fs.ReadFile(fsys, "templates/"+key+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("delivery: template %s: %w", key, err)
		}
		ex, err := parseTemplate(key, string(src))
		if err != nil {
			return nil, err
		}
		parts[key] = ex
	}
	return &Templates{parts: parts}, nil
}

// parseTemplate parses one part and renders it with sample data: a typo in
// a field name parses fine and only fails on execution.
func parseTemplate(key, src string) (executor, error) {
	var ex executor
	var err error
	funcs := map[string]any{"duration": humanDuration}
	if strings.HasSuffix(key, ".html") {
		ex, err = htmltemplate.New(key).Funcs(funcs).Parse(src)
	} else {
		ex, err = texttemplate.New(key).Funcs(funcs).Parse(src)
	}
	if err != nil {
		return nil, fmt.Errorf("delivery: template %s: %w", key, err)
	}
	samples := []TemplateData{
		{DisplayName: "Demo Bank", Link: "https://reset.example/r/x", Code: "123456"},
		{
			DisplayName: "Demo Bank", UserName: "jdoe", Link: "https://reset.example/r/x",
			Code: "123456", ExpiresIn: time.Hour, DisputeLink: "https://reset.example/d/x",
		},
	}
	for _, d := range samples {
		if err := ex.Execute(io.Discard, d); err != nil {
			return nil, fmt.Errorf("delivery: template %s: %w", key, err)
		}
	}
	return ex, nil
}

// humanDuration renders an expiry the way people say it: "1 minute",
// "60 minutes", "2 hours", "3 days". It rounds down so as never to promise
// more time than the user has.
func humanDuration(d time.Duration) string {
	unit := func(n int64, name string) string {
		if n == 1 {
			return "1 " + name
		}
		return strconv.FormatInt(n, 10) + " " + name + "s"
	}
	switch {
	case d < time.Second:
		return "0 seconds"
	case d < time.Minute:
		return unit(int64(d/time.Second), "second")
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= 2*time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	default:
		return unit(int64(d/time.Minute), "minute")
	}
}
