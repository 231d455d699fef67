package delivery

import (
	htmltemplate "html/template"
	"io"
	"io/fs"
	"strings"
	"sync"
	"testing"
	texttemplate "text/template"
	"text/template/parse"
	"time"

	"github.com/resetd/resetd/internal/i18n"
)

// noMemo runs a part as written with every T going to the catalog: the
// slow path the folded copies and Render's memo must render exactly as.
type noMemo struct{ executor }

func (p noMemo) Execute(w io.Writer, data any) error {
	d := data.(TemplateData)
	d.said = nil
	return p.executor.Execute(w, d)
}

// asWritten parses the embedded parts without folding them.
func asWritten(t *testing.T) *Templates {
	t.Helper()
	parts := map[string]executor{}
	for _, key := range templateKeys() {
		src, err := fs.ReadFile(templateFiles, "templates/"+key+".tmpl")
		if err != nil {
			t.Fatal(err)
		}
		ex, _, err := parsePart(key, string(src))
		if err != nil {
			t.Fatal(err)
		}
		parts[key] = noMemo{ex}
	}
	return &Templates{parts: parts}
}

// foldData varies every field a part or a sentence reads, with the
// characters each escaper changes.
func foldData() []TemplateData {
	when := time.Date(2026, 12, 1, 23, 40, 0, 0, time.UTC)
	link := "https://reset.demobank.example/reset?token=1"
	return []TemplateData{
		{DisplayName: "Demo Bank", Link: link, Code: "123456", Changed: ChangedEmail},
		{
			DisplayName: `Dëmo <b>"Bank"</b> & 'Co' +1`, UserName: `j<a>&"'+`, Link: link + "&x=<y>'\"", Code: "12<34",
			ExpiresIn: time.Hour, DisputeLink: "https://reset.demobank.example/reset/d?t=\"'<", Changed: ChangedPhone,
			When: when, How: HowLink,
		},
		{DisplayName: "B", UserName: "{{.Link}}", Link: link, Code: "1", ExpiresIn: 30 * time.Second, Changed: "badge <x>", When: when, How: HowCode},
		{DisplayName: "B", Link: link, Code: "1", ExpiresIn: time.Minute, Changed: ChangedEmail, How: HowAdmin},
		{DisplayName: "B", Link: link, Code: "1", ExpiresIn: 61 * time.Minute, DisputeLink: "https://x.example/d", Changed: ChangedEmail, How: "other <how>"},
		{DisplayName: "B", Link: link, Code: "1", ExpiresIn: 72 * time.Hour, Changed: ChangedPhone, When: when.Add(time.Hour)},
	}
}

// TestFoldedPartsRenderAsWritten: every message of every kind, channel
// and language (and languages without a catalog), with and without
// overrides, renders byte for byte what the parts as written render with
// each sentence asked of the catalog.
func TestFoldedPartsRenderAsWritten(t *testing.T) {
	t.Parallel()
	over := map[string]string{
		"otp.email.subject":                 "Code {{.Code}} for {{.DisplayName}} {{.ExpiresIn}}",
		"fr:otp.email.subject":              "Votre code {{.DisplayName}} : {{.Code}}",
		"de:otp.sms.text":                   "{{.DisplayName}}: Code {{.Code}}, {{.ExpiresIn}} gültig.",
		"reset_link.email.html":             `<p title="x">{{.DisplayName}} {{.UserName}} <a href="{{.Link}}">x</a> {{.ExpiresIn}}</p>`,
		"es:reset_link.email.text":          "Hola {{.UserName}} {{.Link}} {{.ExpiresIn}}",
		"contact_changed.sms.text":          "{{.DisplayName}}: {{.Changed}}",
		"pt:password_changed.email.subject": "{{.DisplayName}} senha",
	}
	rules := OverrideRules{LinkBases: []string{"https://reset.demobank.example/reset"}, MaxLen: map[string]int{
		"DisplayName": 100, "UserName": 1024, "Link": 200, "DisputeLink": 200, "Code": 10, "ExpiresIn": 24, "Changed": 32,
	}}
	fast, slow := DefaultTemplates(), asWritten(t)
	fastOver, err := fast.WithOverrides(over, rules)
	if err != nil {
		t.Fatal(err)
	}
	slowOver, err := slow.WithOverrides(over, rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, pair := range [][2]*Templates{{fast, slow}, {fastOver, slowOver}} {
		for _, lang := range append(i18n.Shipped(), "", "xx", "pt-BR") {
			for _, kind := range kinds {
				for _, channel := range []string{ChannelEmail, ChannelSMS} {
					for i, d := range foldData() {
						d.Lang = lang
						got, err := pair[0].Render(kind, channel, d)
						if err != nil {
							t.Fatalf("%q %s %s %d: %v", lang, kind, channel, i, err)
						}
						want, err := pair[1].Render(kind, channel, d)
						if err != nil {
							t.Fatalf("%q %s %s %d, as written: %v", lang, kind, channel, i, err)
						}
						if got != want {
							t.Errorf("%q %s %s %d:\n got %q\nwant %q", lang, kind, channel, i, got, want)
						}
					}
				}
			}
		}
	}
}

// TestFoldWritesTheFixedSentencesIn: the copies Render uses hold the
// sentences without placeholders as text, and still ask T for the ones
// with placeholders; so the test above compares two different paths.
func TestFoldWritesTheFixedSentencesIn(t *testing.T) {
	t.Parallel()
	part := DefaultTemplates().parts["reset_link.email.html"].(localPart)
	for _, lang := range i18n.Shipped() {
		src := treeOf(t, part[lang]).Root.String()
		hello, _ := i18n.Messages().In(lang).Fixed("email.hello")
		if strings.Contains(src, `"email.hello"`) || !strings.Contains(src, "<strong>"+hello+"</strong>") {
			t.Errorf("%s: email.hello not written in:\n%s", lang, src)
		}
		if !strings.Contains(src, `.T "reset_link.subject"`) {
			t.Errorf("%s: reset_link.subject (it names the institution) written in:\n%s", lang, src)
		}
	}
}

func treeOf(t *testing.T, ex executor) *parse.Tree {
	t.Helper()
	switch ex := ex.(type) {
	case *htmltemplate.Template:
		return ex.Tree
	case *texttemplate.Template:
		return ex.Tree
	}
	t.Fatalf("part of type %T", ex)
	return nil
}

// TestRenderMemoIsPerMessage: T's memo lives for one Render, so messages
// rendered one after another or at once, in different languages and for
// different institutions, never read one another's sentences.
func TestRenderMemoIsPerMessage(t *testing.T) {
	t.Parallel()
	tmpl := DefaultTemplates()
	type job struct {
		lang, name string
		want       Rendered
	}
	var jobs []job
	other := map[string]string{"Alpha Bank": "Beta Bank", "Beta Bank": "Alpha Bank"}
	for _, lang := range i18n.Shipped() {
		for _, name := range []string{"Alpha Bank", "Beta Bank"} {
			d := TemplateData{Lang: lang, DisplayName: name, UserName: "u-" + name, Link: "https://r.example/" + name, ExpiresIn: time.Hour}
			r, err := tmpl.Render(KindResetLink, ChannelEmail, d)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(r.Subject+r.Text+r.HTML, other[name]) {
				t.Errorf("%s %s: the message names %s", lang, name, other[name])
			}
			jobs = append(jobs, job{lang, name, r})
		}
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range 50 {
				j := jobs[i%len(jobs)]
				d := TemplateData{Lang: j.lang, DisplayName: j.name, UserName: "u-" + j.name, Link: "https://r.example/" + j.name, ExpiresIn: time.Hour}
				if r, err := tmpl.Render(KindResetLink, ChannelEmail, d); err != nil || r != j.want {
					t.Errorf("%s %s at once: %v, %+v", j.lang, j.name, err, r)
					return
				}
			}
		})
	}
	wg.Wait()
}
