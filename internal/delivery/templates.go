package delivery

import (
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"maps"
	"slices"
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
// "reset_link.email.html", "reset_link.sms.text", and the same for otp,
// password_changed and contact_changed. ".html" parts are html/template
// (auto-escaped), the rest text/template.
//
// Overrides are data, not programs (SPEC §11): each is checked against
// rules here — only placeholders and if, at most MaxOverrideBytes, an
// HTML part's absolute URLs under rules.LinkBases, and every message it
// is part of at most MaxMessageBytes with the longest values — so an
// institution's bad template is refused when it is set (a *TemplateError)
// rather than when a user needs a reset.
func (t *Templates) WithOverrides(over map[string]string, rules OverrideRules) (*Templates, error) {
	parts := maps.Clone(t.parts)
	bounds := map[string]int{}
	for _, key := range slices.Sorted(maps.Keys(over)) {
		if _, ok := t.parts[key]; !ok {
			return nil, &TemplateError{Key: key, Reason: "unknown key (want <kind>.<channel>.<part>, e.g. reset_link.email.subject)"}
		}
		p, err := checkOverride(key, over[key], rules)
		if err != nil {
			return nil, err
		}
		parts[key], bounds[key] = p, p.bound
	}
	worst := longest(rules.MaxLen)
	for _, kind := range kinds {
		for _, channel := range []string{ChannelEmail, ChannelSMS} {
			keys := partKeys(kind, channel)
			if !slices.ContainsFunc(keys, func(k string) bool { _, ok := over[k]; return ok }) {
				continue
			}
			total := 0
			for _, k := range keys {
				if b, ok := bounds[k]; ok {
					total += b
					continue
				}
				var w strings.Builder
				if err := t.parts[k].Execute(&w, worst); err != nil {
					return nil, fmt.Errorf("delivery: template %s: %w", k, err)
				}
				total += w.Len()
			}
			if total > MaxMessageBytes {
				return nil, &TemplateError{Key: keys[len(keys)-1], Reason: fmt.Sprintf("the %s %s message renders up to %d bytes with the longest values, at most %d", kind, channel, total, MaxMessageBytes)}
			}
		}
	}
	return &Templates{parts: parts}, nil
}

// longest is TemplateData with each placeholder at its longest, made of
// the character whose escape is longest, to measure a default part.
func longest(maxLen map[string]int) TemplateData {
	f := func(name string) string { return strings.Repeat(`"`, max(maxLen[name], 1)) }
	return TemplateData{
		DisplayName: f("DisplayName"), UserName: f("UserName"), Link: f("Link"), DisputeLink: f("DisputeLink"),
		Code: f("Code"), Changed: f("Changed"), ExpiresIn: 10079 * time.Minute,
	}
}

// Render renders the message of kind (KindResetLink, KindOTP,
// KindPasswordChanged) for channel (ChannelEmail, ChannelSMS).
func (t *Templates) Render(kind, channel string, d TemplateData) (Rendered, error) {
	if err := checkTemplateData(kind, channel, d); err != nil {
		return Rendered{}, err
	}
	var r Rendered
	var err error
	// One budget for the whole message: an override checked at PUT stays
	// under it, and nothing renders past it whatever the data.
	budget := MaxMessageBytes
	switch channel {
	case ChannelEmail:
		if r.Subject, err = t.exec(kind+".email.subject", d, &budget); err != nil {
			return Rendered{}, err
		}
		// A subject is one header line whatever the template or the
		// display name contain.
		r.Subject = strings.Join(strings.Fields(r.Subject), " ")
		if r.Text, err = t.exec(kind+".email.text", d, &budget); err != nil {
			return Rendered{}, err
		}
		r.Text = strings.TrimSpace(r.Text) + "\n"
		if r.HTML, err = t.exec(kind+".email.html", d, &budget); err != nil {
			return Rendered{}, err
		}
		r.HTML = strings.TrimSpace(r.HTML) + "\n"
	case ChannelSMS:
		if r.Text, err = t.exec(kind+".sms.text", d, &budget); err != nil {
			return Rendered{}, err
		}
		// Every character counts against the 160 of one SMS segment.
		r.Text = strings.TrimSpace(r.Text)
	}
	return r, nil
}

func (t *Templates) exec(key string, d TemplateData, budget *int) (string, error) {
	ex, ok := t.parts[key]
	if !ok {
		return "", fmt.Errorf("delivery: template %q missing", key)
	}
	w := cappedWriter{left: *budget}
	if err := ex.Execute(&w, d); err != nil {
		return "", fmt.Errorf("delivery: render %s: %w", key, err)
	}
	*budget = w.left
	return w.b.String(), nil
}

// ErrMessageTooLarge is a message that would render past MaxMessageBytes.
var ErrMessageTooLarge = fmt.Errorf("delivery: message larger than %d bytes", MaxMessageBytes)

// cappedWriter stops a render at its budget instead of growing without end.
type cappedWriter struct {
	b    strings.Builder
	left int
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		return 0, ErrMessageTooLarge
	}
	w.left -= len(p)
	return w.b.Write(p)
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

var kinds = []string{KindResetLink, KindOTP, KindPasswordChanged, KindContactChanged}

// templateKeys lists every part a Templates must have.
func templateKeys() []string {
	var keys []string
	for _, kind := range kinds {
		keys = append(keys, partKeys(kind, ChannelEmail)...)
		keys = append(keys, partKeys(kind, ChannelSMS)...)
	}
	return keys
}

// partKeys lists the parts of one message.
func partKeys(kind, channel string) []string {
	if channel == ChannelSMS {
		return []string{kind + ".sms.text"}
	}
	return []string{kind + ".email.subject", kind + ".email.text", kind + ".email.html"}
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
