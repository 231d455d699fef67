// Package i18n owns the languages resetd speaks: the message catalogs
// (one embedded TOML file a language, read by go-i18n with CLDR plural
// rules), the choice of a language by BCP 47 matching
// (golang.org/x/text/language), and the locale's way of writing a
// duration or a date. Every sentence a customer reads — email, SMS, the
// reset page, a password policy reason — comes from a catalog.
package i18n

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// Default is the language of last resort: an institution's defaultLocale
// unless it says otherwise, and the source the translations follow.
const Default = "en"

// shipped are the languages with a complete catalog, Default first.
var shipped = []string{"en", "es", "fr", "de", "pt"}

// Shipped returns the languages resetd has catalogs for ("en", "es",
// "fr", "de", "pt").
func Shipped() []string { return slices.Clone(shipped) }

// IsShipped reports whether code is a language with a catalog (exactly
// as Shipped spells it).
func IsShipped(code string) bool { return slices.Contains(shipped, code) }

//go:embed catalog/*.toml
var catalogFiles embed.FS

// Catalog holds the parsed messages of every shipped language. It is
// immutable and safe for concurrent use.
type Catalog struct {
	ids map[string][]string // language → message ids, sorted
	// locs are the localizers of the shipped languages, made once: a
	// Localizer is read-only, and making one parses its language tag.
	locs map[string]*Localizer
}

// catalog is parsed once: the files are embedded and never change.
var catalog = sync.OnceValue(func() *Catalog {
	c, err := parseCatalog(catalogFiles)
	if err != nil {
		// Only a broken file in catalog/ gets here, and the tests parse
		// them, so this cannot reach a running server.
		panic(err)
	}
	return c
})

// Messages returns the embedded catalogs, parsed once.
func Messages() *Catalog { return catalog() }

func parseCatalog(fsys fs.FS) (*Catalog, error) {
	b := goi18n.NewBundle(language.English)
	b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	c := &Catalog{ids: map[string][]string{}, locs: map[string]*Localizer{}}
	msgs := map[string]map[string]*goi18n.Message{}
	for _, lang := range shipped {
		name := "catalog/" + lang + ".toml"
		src, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("i18n: %w", err)
		}
		mf, err := b.ParseMessageFileBytes(src, path.Base(name))
		if err != nil {
			return nil, fmt.Errorf("i18n: %s: %w", name, err)
		}
		msgs[lang] = map[string]*goi18n.Message{}
		for _, m := range mf.Messages {
			c.ids[lang] = append(c.ids[lang], m.ID)
			msgs[lang][m.ID] = m
		}
		slices.Sort(c.ids[lang])
	}
	for _, lang := range shipped {
		l := &Localizer{lang: lang, l: goi18n.NewLocalizer(b, lang), fixed: map[string]string{}}
		for id, m := range msgs[lang] {
			if hasPlaceholders(m) {
				continue
			}
			// The text is go-i18n's own, so that T answers the same with
			// or without this table.
			l.fixed[id] = localize(l.l, id, nil)
		}
		c.locs[lang] = l
	}
	return c, nil
}

// hasPlaceholders reports whether any plural form of m is a template, or
// might be one under delimiters of its own.
func hasPlaceholders(m *goi18n.Message) bool {
	if m.LeftDelim != "" || m.RightDelim != "" {
		return true
	}
	for _, form := range []string{m.Zero, m.One, m.Two, m.Few, m.Many, m.Other} {
		if strings.Contains(form, "{{") {
			return true
		}
	}
	return false
}

// IDs returns the message ids of lang's catalog, sorted.
func (c *Catalog) IDs(lang string) []string { return slices.Clone(c.ids[lang]) }

// Localizer renders messages in one language. The zero value is not
// usable; get one from Catalog.In.
type Localizer struct {
	lang string
	l    *goi18n.Localizer
	// fixed holds what T renders for each of lang's messages without a
	// placeholder: go-i18n's answer, computed once, so that T skips
	// go-i18n's language matching and lookup for most sentences.
	fixed map[string]string
}

// In returns the localizer for lang, which must be a shipped language
// (any other renders Default). It is shared and safe for concurrent use.
func (c *Catalog) In(lang string) *Localizer {
	if !IsShipped(lang) {
		lang = Default
	}
	return c.locs[lang]
}

// Lang is the localizer's language, a shipped code ("fr").
func (l *Localizer) Lang() string { return l.lang }

// Data is what a message's placeholders ({{.DisplayName}}) read.
type Data = map[string]any

// T renders message id with data. A message missing from every catalog
// (a typo the catalog test would have caught) renders as its id, so a
// page never breaks over one sentence.
func (l *Localizer) T(id string, data Data) string {
	if s, ok := l.fixed[id]; ok {
		return s
	}
	return localize(l.l, id, data)
}

// Fixed returns what T renders for message id whatever the data, when
// the message has no placeholder in the language; ok is false for one
// that has, or for an id the language does not have.
func (l *Localizer) Fixed(id string) (s string, ok bool) {
	s, ok = l.fixed[id]
	return s, ok
}

func localize(l *goi18n.Localizer, id string, data Data) string {
	s, err := l.Localize(&goi18n.LocalizeConfig{MessageID: id, TemplateData: data})
	if err != nil && s == "" {
		return id
	}
	return s
}

// N renders message id in the plural form n takes in the language;
// {{.Count}} in the message is n unless data says otherwise.
func (l *Localizer) N(id string, n int, data Data) string {
	d := Data{"Count": n}
	for k, v := range data {
		d[k] = v
	}
	s, err := l.l.Localize(&goi18n.LocalizeConfig{MessageID: id, TemplateData: d, PluralCount: n})
	if err != nil && s == "" {
		return id
	}
	return s
}

// Duration says d the way people say an expiry: "1 minute", "60
// minutes", "2 hours", "3 days" (or "15 Minuten", "15 minutos"). It
// rounds down so as never to promise more time than there is.
func (l *Localizer) Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return l.N("duration.seconds", 0, nil)
	case d < time.Minute:
		return l.N("duration.seconds", int(d/time.Second), nil)
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return l.N("duration.days", int(d/(24*time.Hour)), nil)
	case d >= 2*time.Hour && d%time.Hour == 0:
		return l.N("duration.hours", int(d/time.Hour), nil)
	default:
		return l.N("duration.minutes", int(d/time.Minute), nil)
	}
}

// DateTime writes t (in UTC) in the locale's order: "2026-12-02 15:04
// UTC", "02/12/2026 à 15:04 UTC", "02.12.2026, 15:04 UTC".
func (l *Localizer) DateTime(t time.Time) string {
	t = t.UTC()
	return l.T("format.datetime", Data{
		"Year": t.Format("2006"), "Month": t.Format("01"), "Day": t.Format("02"), "Time": t.Format("15:04"),
	})
}

// ErrMalformed is a locale that is not a well-formed BCP 47 tag.
var ErrMalformed = errors.New("i18n: not a well-formed BCP 47 language tag")

// Canonical checks that tag is a well-formed BCP 47 tag (RFC 5646) and
// returns it in canonical case ("pt-br" → "pt-BR"). A well-formed tag of
// a language resetd has no catalog for is still a tag: it is kept and
// falls back when matched.
func Canonical(tag string) (string, error) {
	if tag == "" || len(tag) > 35 || strings.ContainsAny(tag, " _") {
		return "", ErrMalformed
	}
	t, err := language.Parse(tag)
	if err != nil {
		return "", ErrMalformed
	}
	return t.String(), nil
}

// Match picks the offered language that best serves wanted (BCP 47 tags,
// most wanted first: "de-AT" is served by "de"), or fallback when none of
// them matches an offered one with at least high confidence. offered
// holds shipped codes; an empty wanted, or one that does not parse, is
// skipped.
func Match(offered []string, fallback string, wanted ...string) string {
	var tags []language.Tag
	for _, w := range wanted {
		if w == "" {
			continue
		}
		if t, err := language.Parse(w); err == nil {
			tags = append(tags, t)
		}
	}
	return match(offered, fallback, tags)
}

// MatchAccept is Match for an Accept-Language header ("de-CH, fr;q=0.8"):
// the browser's languages in the order of their q values.
func MatchAccept(offered []string, fallback, acceptLanguage string) string {
	if len(acceptLanguage) > 1024 {
		// Nobody has that many languages: keep the whole entries that fit.
		acceptLanguage = acceptLanguage[:1024]
		if i := strings.LastIndexByte(acceptLanguage, ','); i >= 0 {
			acceptLanguage = acceptLanguage[:i]
		}
	}
	tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil {
		return fallback
	}
	return match(offered, fallback, tags)
}

func match(offered []string, fallback string, wanted []language.Tag) string {
	if len(offered) == 0 || len(wanted) == 0 {
		return fallback
	}
	tags := make([]language.Tag, len(offered))
	for i, o := range offered {
		tags[i] = language.Make(o)
	}
	// Each wanted tag is tried alone, in the caller's order: a matcher
	// given them all would let a close second language ("fr") beat a
	// first one the offer only serves through its parent ("de-CH" → "de").
	m := language.NewMatcher(tags)
	for _, w := range wanted {
		if w == language.Und {
			continue
		}
		_, i, conf := m.Match(w)
		if conf >= language.High {
			return offered[i]
		}
	}
	return fallback
}
