package delivery

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
	"time"

	"github.com/resetd/resetd/internal/i18n"
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
// Default templates take every sentence from the catalog of Lang with
// {{.T "message.id"}}; an override sees the placeholders as text in that
// language ({{.ExpiresIn}} reads "60 minutes" or "60 Minuten").
type TemplateData struct {
	// Lang is the language to render in: a shipped code ("fr"), chosen by
	// the caller from the user's locale and the institution's; "" is
	// i18n.Default.
	Lang        string
	DisplayName string        // institution's display name, e.g. "Demo Bank"
	UserName    string        // email only: SMS is read on lock screens
	Link        string        // reset link (reset_link kind)
	Code        string        // OTP (otp kind)
	ExpiresIn   time.Duration // how long Link or Code stays valid
	DisputeLink string        // optional "This wasn't me" link, shown when set
	// Changed names what was replaced in a contact_changed notice:
	// ChangedEmail or ChangedPhone.
	Changed string
	// When and How say, in a password_changed notice, when the change was
	// made and how: HowLink, HowCode or HowAdmin.
	When time.Time
	How  string

	loc   *i18n.Localizer // set by Render from Lang
	texts i18n.Data       // words(), computed once by Render
	// said holds, within one Render, what T returned for an id: the
	// subject and the sentences with placeholders are read by more than
	// one part of an email.
	said map[string]string
}

// What a contact_changed notice says was replaced.
const (
	ChangedEmail = "email address"
	ChangedPhone = "phone number"
)

// How a password was changed, as a password_changed notice says it.
const (
	HowLink  = "reset link"
	HowCode  = "code"
	HowAdmin = "by the bank"
)

// T renders catalog message id in the message's language, with the
// placeholders as the message's reader sees them.
func (d TemplateData) T(id string) string {
	if s, ok := d.said[id]; ok {
		return s
	}
	if d.texts == nil {
		d.texts = d.words()
	}
	s := d.localizer().T(id, d.texts)
	if d.said != nil {
		d.said[id] = s
	}
	return s
}

// ChangedPhone reports whether a contact_changed notice is about a phone
// number (else an email address): the sentences differ by more than a noun.
func (d TemplateData) ChangedPhone() bool { return d.Changed == ChangedPhone }

func (d TemplateData) localizer() *i18n.Localizer {
	if d.loc != nil {
		return d.loc
	}
	return i18n.Messages().In(d.Lang)
}

// words are the placeholders as text in the message's language.
func (d TemplateData) words() i18n.Data {
	l := d.localizer()
	w := i18n.Data{
		"DisplayName": d.DisplayName, "UserName": d.UserName, "Link": d.Link, "Code": d.Code,
		"DisputeLink": d.DisputeLink, "ExpiresIn": "", "Changed": "", "When": "", "How": "",
	}
	if d.ExpiresIn > 0 {
		w["ExpiresIn"] = l.Duration(d.ExpiresIn)
	}
	switch d.Changed {
	case ChangedEmail:
		w["Changed"] = l.T("contact_changed.email_address", nil)
	case ChangedPhone:
		w["Changed"] = l.T("contact_changed.phone_number", nil)
	default:
		w["Changed"] = d.Changed
	}
	if !d.When.IsZero() {
		w["When"] = l.DateTime(d.When)
	}
	switch d.How {
	case HowLink:
		w["How"] = l.T("password_changed.how_link", nil)
	case HowCode:
		w["How"] = l.T("password_changed.how_code", nil)
	case HowAdmin:
		w["How"] = l.T("password_changed.how_admin", nil)
	default:
		w["How"] = d.How
	}
	return w
}

// Rendered is a rendered message; SMS uses Text only. Lang is the
// language it is written in (an email's Content-Language).
type Rendered struct{ Subject, Text, HTML, Lang string }

// Templates holds parsed templates for every kind and channel. It is
// immutable and safe for concurrent use.
type Templates struct {
	// parts by key: "reset_link.email.html" for every language, and
	// "fr:reset_link.email.html" for one (an override only).
	parts map[string]executor
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
// password_changed and contact_changed; such a key replaces the part in
// every language. A key prefixed with a shipped language and a colon,
// "fr:reset_link.email.subject", replaces it in that language only, and
// wins over the unprefixed one there. ".html" parts are html/template
// (auto-escaped), the rest text/template.
//
// Overrides are data, not programs: each is checked against rules here —
// only placeholders and if, at most MaxOverrideBytes, an HTML part's
// absolute URLs under rules.LinkBases, and every message it is part of at
// most MaxMessageBytes with the longest values in every language — so an
// institution's bad template is refused when it is set (a
// *TemplateError) rather than when a user needs a reset.
func (t *Templates) WithOverrides(over map[string]string, rules OverrideRules) (*Templates, error) {
	parts := maps.Clone(t.parts)
	bounds := map[string]int{}
	for _, key := range slices.Sorted(maps.Keys(over)) {
		lang, part, prefixed := splitKey(key)
		if prefixed && !i18n.IsShipped(lang) {
			return nil, &TemplateError{Key: key, Reason: fmt.Sprintf("unknown language %q (want one of %s, as in fr:reset_link.email.subject)", lang, strings.Join(i18n.Shipped(), ", "))}
		}
		if _, ok := t.parts[part]; !ok || strings.Contains(part, ":") {
			return nil, &TemplateError{Key: key, Reason: "unknown key (want <kind>.<channel>.<part>, e.g. reset_link.email.subject, or <language>:<kind>.<channel>.<part>, e.g. fr:reset_link.email.subject)"}
		}
		p, err := checkOverride(part, over[key], rules)
		if err != nil {
			var te *TemplateError
			if errors.As(err, &te) {
				te.Key = key
			}
			return nil, err
		}
		parts[key], bounds[key] = p, p.bound
	}
	for _, lang := range i18n.Shipped() {
		worst := longest(rules.MaxLen)
		worst.Lang = lang
		worst.loc = i18n.Messages().In(lang)
		for _, kind := range kinds {
			for _, channel := range []string{ChannelEmail, ChannelSMS} {
				keys := partKeys(kind, channel)
				if !slices.ContainsFunc(keys, func(k string) bool { return has(over, lang, k) }) {
					continue
				}
				total := 0
				for _, k := range keys {
					if b, ok := bounds[lang+":"+k]; ok {
						total += b
						continue
					}
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
					return nil, &TemplateError{Key: keys[len(keys)-1], Reason: fmt.Sprintf("the %s %s message in %s renders up to %d bytes with the longest values, at most %d", kind, channel, lang, total, MaxMessageBytes)}
				}
			}
		}
	}
	return &Templates{parts: parts}, nil
}

// splitKey splits "fr:reset_link.email.subject" into its language and
// part; an unprefixed key has no language.
func splitKey(key string) (lang, part string, prefixed bool) {
	if l, p, ok := strings.Cut(key, ":"); ok {
		return l, p, true
	}
	return "", key, false
}

// has reports whether over replaces part in lang.
func has(over map[string]string, lang, part string) bool {
	if _, ok := over[part]; ok {
		return true
	}
	_, ok := over[lang+":"+part]
	return ok
}

// longest is TemplateData with each placeholder at its longest, made of
// the character whose escape is longest, to measure a default part.
func longest(maxLen map[string]int) TemplateData {
	f := func(name string) string { return strings.Repeat(`"`, max(maxLen[name], 1)) }
	return TemplateData{
		DisplayName: f("DisplayName"), UserName: f("UserName"), Link: f("Link"), DisputeLink: f("DisputeLink"),
		Code: f("Code"), Changed: ChangedEmail, ExpiresIn: 10079 * time.Minute,
		When: time.Date(2026, 12, 31, 23, 59, 0, 0, time.UTC), How: HowAdmin,
	}
}

// Render renders the message of kind (KindResetLink, KindOTP,
// KindPasswordChanged, KindContactChanged) for channel (ChannelEmail,
// ChannelSMS) in d.Lang (a language without a catalog renders in
// i18n.Default).
func (t *Templates) Render(kind, channel string, d TemplateData) (Rendered, error) {
	if err := checkTemplateData(kind, channel, d); err != nil {
		return Rendered{}, err
	}
	d.loc = i18n.Messages().In(d.Lang)
	d.Lang = d.loc.Lang()
	d.texts = d.words()
	if channel == ChannelEmail {
		d.said = make(map[string]string, 8)
	}
	r := Rendered{Lang: d.Lang}
	// One budget for the whole message: an override checked at PUT stays
	// under it, and nothing renders past it whatever the data. One buffer
	// too, each part copied out of it trimmed, made once to the size of
	// the largest default part (an HTML part under 2 KiB, an SMS of two
	// segments) rather than grown by doubling.
	size := 2 << 10
	if channel == ChannelSMS {
		size = 512
	}
	w := &cappedWriter{b: make([]byte, 0, size), left: MaxMessageBytes}
	switch channel {
	case ChannelEmail:
		if err := t.exec(kind+".email.subject", d, w); err != nil {
			return Rendered{}, err
		}
		// A subject is one header line whatever the template or the
		// display name contain.
		r.Subject = strings.Join(strings.Fields(string(w.b)), " ")
		if err := t.exec(kind+".email.text", d, w); err != nil {
			return Rendered{}, err
		}
		r.Text = string(bytes.TrimSpace(w.b)) + "\n"
		if err := t.exec(kind+".email.html", d, w); err != nil {
			return Rendered{}, err
		}
		r.HTML = string(bytes.TrimSpace(w.b)) + "\n"
	case ChannelSMS:
		if err := t.exec(kind+".sms.text", d, w); err != nil {
			return Rendered{}, err
		}
		// Every character counts against the 160 of one SMS segment.
		r.Text = string(bytes.TrimSpace(w.b))
	}
	return r, nil
}

// exec renders the part key in d's language into w, in place of what w
// held: that language's override, else the override for every language,
// else the default.
func (t *Templates) exec(key string, d TemplateData, w *cappedWriter) error {
	ex, ok := t.parts[d.Lang+":"+key]
	if !ok {
		ex, ok = t.parts[key]
	}
	if !ok {
		return fmt.Errorf("delivery: template %q missing", key)
	}
	w.b = w.b[:0]
	if err := ex.Execute(w, d); err != nil {
		return fmt.Errorf("delivery: render %s: %w", key, err)
	}
	return nil
}

// ErrMessageTooLarge is a message that would render past MaxMessageBytes.
var ErrMessageTooLarge = fmt.Errorf("delivery: message larger than %d bytes", MaxMessageBytes)

// cappedWriter stops a render at its budget instead of growing without end.
type cappedWriter struct {
	b    []byte
	left int
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		return 0, ErrMessageTooLarge
	}
	w.left -= len(p)
	w.b = append(w.b, p...)
	return len(p), nil
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

// parseTemplate parses one part, and a copy of it for each language with
// the catalog's fixed sentences written in (a localPart), and renders it
// with sample data: a typo in a field name parses fine and only fails on
// execution.
func parseTemplate(key, src string) (executor, error) {
	ex := localPart{}
	trees := map[string]*parse.Tree{}
	for _, lang := range i18n.Shipped() {
		local, tree, err := parsePart(key, src)
		if err != nil {
			return nil, err
		}
		fold(tree, i18n.Messages().In(lang), !strings.HasSuffix(key, ".html"))
		ex[lang], trees[lang] = local, tree
	}
	samples := []TemplateData{
		{DisplayName: "Demo Bank", Link: "https://reset.example/r/x", Code: "123456"},
		{
			DisplayName: "Demo Bank", UserName: "jdoe", Link: "https://reset.example/r/x",
			Code: "123456", ExpiresIn: time.Hour, DisputeLink: "https://reset.example/d/x",
		},
	}
	for _, lang := range i18n.Shipped() {
		for _, d := range samples {
			d.Lang = lang
			if err := ex.Execute(io.Discard, d); err != nil {
				return nil, fmt.Errorf("delivery: template %s: %w", key, err)
			}
		}
	}
	if strings.HasSuffix(key, ".html") {
		// Executed above, every copy is escaped.
		for _, tree := range trees {
			foldEscaped(tree)
		}
	}
	return ex, nil
}

// parsePart parses one part as html/template (".html") or text/template.
func parsePart(key, src string) (executor, *parse.Tree, error) {
	if strings.HasSuffix(key, ".html") {
		t, err := htmltemplate.New(key).Option("missingkey=error").Parse(src)
		if err != nil {
			return nil, nil, fmt.Errorf("delivery: template %s: %w", key, err)
		}
		return t, t.Tree, nil
	}
	t, err := texttemplate.New(key).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, nil, fmt.Errorf("delivery: template %s: %w", key, err)
	}
	return t, t.Tree, nil
}
