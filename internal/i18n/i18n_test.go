package i18n

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	goi18n "github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// TestCatalogsAreComplete fails when a message id is missing from a
// language, or present there but not in English (the source).
func TestCatalogsAreComplete(t *testing.T) {
	t.Parallel()
	c := Messages()
	want := c.IDs(Default)
	if len(want) < 100 {
		t.Fatalf("the English catalog has %d messages; it was not read", len(want))
	}
	for _, lang := range Shipped() {
		got := c.IDs(lang)
		for _, id := range want {
			if !slices.Contains(got, id) {
				t.Errorf("%s: message %q is missing", lang, id)
			}
		}
		for _, id := range got {
			if !slices.Contains(want, id) {
				t.Errorf("%s: message %q is not in the English catalog", lang, id)
			}
		}
	}
}

// TestEveryMessageIsUsed fails when a catalog holds an id no code or
// template names: every id appears quoted in a Go file or a template.
func TestEveryMessageIsUsed(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	var sources strings.Builder
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		name := d.Name()
		code := strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")
		if !code && !strings.HasSuffix(name, ".tmpl") && !(strings.HasSuffix(name, ".html") && strings.Contains(path, "templates")) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sources.Write(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	all := sources.String()
	if !strings.Contains(all, `"reset_link.subject"`) {
		t.Fatal("the templates were not read")
	}
	for _, id := range Messages().IDs(Default) {
		if !strings.Contains(all, `"`+id+`"`) {
			t.Errorf("message %q is in the catalogs but no code or template uses it", id)
		}
	}
}

var placeholder = regexp.MustCompile(`\.([A-Z][A-Za-z]*)`)

// placeholders are the fields a message's template reads, in every form.
func placeholders(m *goi18n.Message) []string {
	var out []string
	for _, src := range []string{m.Zero, m.One, m.Two, m.Few, m.Many, m.Other} {
		for _, a := range regexp.MustCompile(`{{[^}]*}}`).FindAllString(src, -1) {
			for _, p := range placeholder.FindAllStringSubmatch(a, -1) {
				if !slices.Contains(out, p[1]) {
					out = append(out, p[1])
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestTranslationsKeepThePlaceholders: a translation names only fields its
// English source names (a typo renders "<no value>"), and keeps the link
// and the code, without which a message is useless.
func TestTranslationsKeepThePlaceholders(t *testing.T) {
	t.Parallel()
	files := map[string]map[string]*goi18n.Message{}
	for _, lang := range Shipped() {
		src, err := catalogFiles.ReadFile("catalog/" + lang + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		b := goi18n.NewBundle(language.Make(lang))
		b.RegisterUnmarshalFunc("toml", toml.Unmarshal)
		mf, err := b.ParseMessageFileBytes(src, lang+".toml")
		if err != nil {
			t.Fatal(err)
		}
		files[lang] = map[string]*goi18n.Message{}
		for _, m := range mf.Messages {
			files[lang][m.ID] = m
		}
	}
	for id, en := range files[Default] {
		want := placeholders(en)
		for _, lang := range Shipped()[1:] {
			m, ok := files[lang][id]
			if !ok {
				continue // TestCatalogsAreComplete reports it
			}
			got := placeholders(m)
			for _, p := range got {
				if !slices.Contains(want, p) {
					t.Errorf("%s %s: names {{.%s}}, which the English message does not", lang, id, p)
				}
			}
			for _, p := range []string{"Link", "DisputeLink", "Code", "Count", "Year", "Month", "Day", "Time"} {
				if slices.Contains(want, p) && !slices.Contains(got, p) {
					t.Errorf("%s %s: leaves out {{.%s}}", lang, id, p)
				}
			}
		}
	}
}

// TestEveryMessageRenders renders every message of every language with
// every placeholder set and with none, and every plural with counts of
// each CLDR form: no template error, no "<no value>", no leftover braces.
func TestEveryMessageRenders(t *testing.T) {
	t.Parallel()
	c := Messages()
	full := Data{
		"DisplayName": "Demo Bank", "UserName": "jdoe", "Link": "https://r.example/r?token=x", "DisputeLink": "https://r.example/d?token=y",
		"Code": "123456", "ExpiresIn": "1 h", "Changed": "x", "When": "now", "How": "how", "Institution": "Demo Bank", "CodeLength": 6,
		"Year": "2026", "Month": "12", "Day": "02", "Time": "15:04",
	}
	empty := Data{}
	for k := range full {
		empty[k] = ""
	}
	for _, lang := range Shipped() {
		l := c.In(lang)
		for _, id := range c.IDs(lang) {
			plural := isPlural(lang, id)
			for _, d := range []Data{full, empty} {
				for _, n := range []int{0, 1, 2, 3, 5, 11, 21, 100, 1000000} {
					cfg := &goi18n.LocalizeConfig{MessageID: id, TemplateData: withCount(d, n)}
					if plural {
						cfg.PluralCount = n
					}
					got, err := l.l.Localize(cfg)
					if err != nil {
						t.Errorf("%s %s (n=%d): %v", lang, id, n, err)
						continue
					}
					if strings.Contains(got, "<no value>") || strings.Contains(got, "{{") || strings.TrimSpace(got) == "" {
						t.Errorf("%s %s: renders %q", lang, id, got)
					}
				}
			}
		}
	}
}

// TestFixedMessagesAreGoI18nsAnswer: T's table of messages without
// placeholders answers exactly what go-i18n answers from a bundle parsed
// apart, for every id (and one that does not exist) in every language and
// with any data, so it can serve neither another language's sentence nor
// an old one; and a message with placeholders still reads its data.
func TestFixedMessagesAreGoI18nsAnswer(t *testing.T) {
	t.Parallel()
	ref := goi18n.NewBundle(language.English)
	ref.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	refMsgs := map[string]map[string]*goi18n.Message{}
	var ids []string
	for _, lang := range Shipped() {
		src, err := catalogFiles.ReadFile("catalog/" + lang + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		mf, err := ref.ParseMessageFileBytes(src, lang+".toml")
		if err != nil {
			t.Fatal(err)
		}
		refMsgs[lang] = map[string]*goi18n.Message{}
		for _, m := range mf.Messages {
			refMsgs[lang][m.ID] = m
			if !slices.Contains(ids, m.ID) {
				ids = append(ids, m.ID)
			}
		}
	}
	ids = append(ids, "no.such.message")
	full := Data{
		"DisplayName": "Demo Bank", "UserName": "jdoe", "Link": "https://r.example/r?token=x", "DisputeLink": "https://r.example/d?token=y",
		"Code": "123456", "ExpiresIn": "1 h", "Changed": "x", "When": "now", "How": "how", "Institution": "Demo Bank", "CodeLength": 6,
		"Year": "2026", "Month": "12", "Day": "02", "Time": "15:04",
	}
	c := Messages()
	for _, lang := range append(Shipped(), "", "xx", "pt-BR") {
		l := c.In(lang)
		want := goi18n.NewLocalizer(ref, l.Lang())
		fixed := 0
		for _, id := range ids {
			s, ok := l.Fixed(id)
			if ok {
				fixed++
				if m := refMsgs[l.Lang()][id]; m == nil || hasPlaceholders(m) {
					t.Errorf("%s %s: Fixed = %q for a message with placeholders or none", lang, id, s)
				}
			}
			for _, d := range []Data{nil, {}, full} {
				w, err := want.Localize(&goi18n.LocalizeConfig{MessageID: id, TemplateData: d})
				if err != nil && w == "" {
					w = id
				}
				if got := l.T(id, d); got != w {
					t.Errorf("%s T(%q) = %q, go-i18n says %q", lang, id, got, w)
				}
				if ok && s != w {
					t.Errorf("%s Fixed(%q) = %q, go-i18n says %q", lang, id, s, w)
				}
			}
		}
		if fixed < 50 {
			t.Errorf("%s: %d messages without placeholders in the table, want most", lang, fixed)
		}
	}
	for _, lang := range Shipped() {
		l := c.In(lang)
		if s, ok := l.Fixed("reset_link.subject"); ok {
			t.Errorf("%s: reset_link.subject is fixed (%q), it names the institution", lang, s)
		}
		if got := l.T("reset_link.subject", Data{"DisplayName": "Zorg Bank"}); !strings.Contains(got, "Zorg Bank") {
			t.Errorf("%s: reset_link.subject = %q, without its data", lang, got)
		}
	}
	if en, fr := c.In("en").T("email.hello", nil), c.In("fr").T("email.hello", nil); en == fr {
		t.Errorf("email.hello reads %q in English and in French", en)
	}
}

// isPlural reports whether lang's message id has plural forms.
func isPlural(lang, id string) bool {
	src, _ := catalogFiles.ReadFile("catalog/" + lang + ".toml")
	mf, err := goi18n.ParseMessageFileBytes(src, lang+".toml", map[string]goi18n.UnmarshalFunc{"toml": toml.Unmarshal})
	if err != nil {
		return false
	}
	for _, m := range mf.Messages {
		if m.ID == id {
			return m.One != ""
		}
	}
	return false
}

func withCount(d Data, n int) Data {
	out := Data{"Count": n}
	for k, v := range d {
		out[k] = v
	}
	return out
}

func TestDurationsAndDates(t *testing.T) {
	t.Parallel()
	when := time.Date(2026, 12, 2, 15, 4, 0, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		lang string
		d    time.Duration
		want string
	}{
		{"en", 0, "0 seconds"},
		{"en", -time.Minute, "0 seconds"},
		{"en", time.Second, "1 second"},
		{"en", 45 * time.Second, "45 seconds"},
		{"en", time.Minute, "1 minute"},
		{"en", 90 * time.Second, "1 minute"},
		{"en", 10 * time.Minute, "10 minutes"},
		{"en", 59*time.Minute + 59*time.Second, "59 minutes"},
		{"en", 60 * time.Minute, "60 minutes"},
		{"en", 2 * time.Hour, "2 hours"},
		{"en", 24 * time.Hour, "24 hours"},
		{"en", 25*time.Hour + time.Minute, "1501 minutes"},
		{"en", 48 * time.Hour, "2 days"},
		{"fr", 15 * time.Minute, "15 minutes"},
		{"fr", time.Minute, "1 minute"},
		{"fr", 0, "0 seconde"}, // French counts 0 as singular
		{"fr", 2 * time.Hour, "2 heures"},
		{"de", 15 * time.Minute, "15 Minuten"},
		{"de", time.Minute, "1 Minute"},
		{"de", 7 * 24 * time.Hour, "7 Tage"},
		{"es", 15 * time.Minute, "15 minutos"},
		{"es", 72 * time.Hour, "3 días"},
		{"pt", 15 * time.Minute, "15 minutos"},
		{"pt", 3 * time.Hour, "3 horas"},
	} {
		if got := Messages().In(tc.lang).Duration(tc.d); got != tc.want {
			t.Errorf("%s Duration(%v) = %q, want %q", tc.lang, tc.d, got, tc.want)
		}
	}
	for lang, want := range map[string]string{
		"en": "2026-12-02 14:04 UTC",
		"fr": "02/12/2026 à 14:04 UTC",
		"de": "02.12.2026 um 14:04 UTC",
		"es": "02/12/2026 a las 14:04 UTC",
		"pt": "02/12/2026 às 14:04 UTC",
	} {
		if got := Messages().In(lang).DateTime(when); got != want {
			t.Errorf("%s DateTime = %q, want %q", lang, got, want)
		}
	}
}

func TestMatch(t *testing.T) {
	t.Parallel()
	all := Shipped()
	for _, tc := range []struct {
		offered  []string
		fallback string
		wanted   []string
		want     string
	}{
		{all, "en", []string{"de-AT"}, "de"},
		{all, "en", []string{"fr-CA"}, "fr"},
		{all, "en", []string{"pt-BR"}, "pt"},
		{all, "en", []string{"pt-PT"}, "pt"},
		{all, "en", []string{"es-419"}, "es"},
		{all, "fr", []string{"it"}, "fr"}, // not offered: the default
		{[]string{"en", "fr"}, "en", []string{"de"}, "en"},
		{all, "de", []string{""}, "de"},
		{all, "de", []string{"not a tag!"}, "de"},
		{all, "en", []string{"", "es-MX"}, "es"},
		{all, "en", []string{"und"}, "en"},
	} {
		if got := Match(tc.offered, tc.fallback, tc.wanted...); got != tc.want {
			t.Errorf("Match(%v, %q, %q) = %q, want %q", tc.offered, tc.fallback, tc.wanted, got, tc.want)
		}
	}
	for _, tc := range []struct {
		offered  []string
		fallback string
		accept   string
		want     string
	}{
		{all, "en", "de-CH, fr;q=0.8", "de"},
		{all, "en", "fr;q=0.8, de-CH", "de"}, // q decides, not the order written
		{[]string{"en", "fr"}, "en", "de-CH, fr;q=0.8", "fr"},
		{[]string{"en", "es"}, "es", "de-CH, fr;q=0.8", "es"},
		{all, "en", "", "en"},
		{all, "pt", "*", "pt"},
		{all, "en", "xx-YY;q=oops, ,,;", "en"},
		{all, "en", strings.Repeat("de-CH,", 500), "de"},
	} {
		if got := MatchAccept(tc.offered, tc.fallback, tc.accept); got != tc.want {
			t.Errorf("MatchAccept(%v, %q, %q) = %q, want %q", tc.offered, tc.fallback, tc.accept, got, tc.want)
		}
	}
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"fr": "fr", "pt-br": "pt-BR", "DE-at": "de-AT", "it": "it", "zh-Hant-TW": "zh-Hant-TW", "es-419": "es-419"} {
		if got, err := Canonical(in); err != nil || got != want {
			t.Errorf("Canonical(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "fr_FR", "english", "12", "fr-", "-fr", "fr FR", "x", strings.Repeat("a", 40), "fr\n", "de-AT-AT-AT-AT-AT-AT-AT-AT-AT-AT-AT-AT"} {
		if got, err := Canonical(in); err == nil {
			t.Errorf("Canonical(%q) = %q, want an error", in, got)
		}
	}
}
