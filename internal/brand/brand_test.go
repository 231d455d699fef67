package brand

import (
	"bytes"
	"encoding/base64"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"testing"
)

func TestContrastMatchesWCAG(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		want float64
	}{
		{"#ffffff", "#000000", 21},
		{"#ffffff", "#ffffff", 1},
		// White on the page's own colours (the stylesheet's comments),
		// and the pair either side of 4.5:1 that WebAIM's checker shows.
		{"#ffffff", "#0b3d6e", 11.01},
		{"#ffffff", "#0b5cad", 6.67},
		{"#ffffff", "#767676", 4.54},
		{"#ffffff", "#777777", 4.48},
		{"#ffffff", "#ffff00", 1.07},
	} {
		if got := Contrast(c.a, c.b); math.Abs(got-c.want) > 0.01 {
			t.Errorf("Contrast(%s, %s) = %.3f, want %.2f", c.a, c.b, got, c.want)
		}
	}
}

func TestParseColor(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"#0B3D6E", "#767676", "#b3261e", "#000000"} {
		got, err := ParseColor(ok)
		if err != nil || got != strings.ToLower(ok) {
			t.Errorf("ParseColor(%q) = %q, %v", ok, got, err)
		}
	}
	for in, want := range map[string]string{
		"#ffff00":      "contrast of 1.07:1",
		"#777777":      "contrast of 4.47:1", // 4.478…: just under 4.5, never rounded up
		"#fff":         "not a colour of the form #RRGGBB",
		"0b3d6e":       "not a colour",
		"#0b3d6e ":     "not a colour",
		"#0b3d6g":      "not a colour",
		"red":          "not a colour",
		"#0b3d6e;x:y":  "not a colour",
		"#0b3d6e\n":    "not a colour",
		"":             "not a colour",
		"#0b3d6e0b3d6": "not a colour",
	} {
		if _, err := ParseColor(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseColor(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

func TestDarkerKeepsContrast(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"#767676", "#0b3d6e", "#b3261e"} {
		d := Darker(c, 0.15)
		if Contrast(d, "#ffffff") <= Contrast(c, "#ffffff") {
			t.Errorf("Darker(%s) = %s is not darker", c, d)
		}
	}
}

func pngBytes(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range w {
		img.Set(i, i%h, color.NRGBA{R: 11, G: 61, B: 110, A: 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const goodSVG = `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 120 40" width="120" height="40" role="img" aria-label="Acme">
  <title>Acme Bank</title>
  <!-- exported by hand -->
  <defs>
    <linearGradient id="g" x1="0" x2="1"><stop offset="0" stop-color="#fff"/><stop offset="1" stop-color="#ccc"/></linearGradient>
    <style type="text/css"><![CDATA[ .t { font: bold 20px sans-serif; fill: url(#g); } ]]></style>
  </defs>
  <rect width="120" height="40" rx="4" fill="url(#g)" style="stroke: url('#g'); stroke-width: 2"/>
  <use xlink:href="#r"/><use href="#r"/>
  <text x="10" y="28" class="t" xml:space="preserve">Acme<tspan dx="4">Bank</tspan></text>
</svg>`

func b64(s []byte) string { return base64.StdEncoding.EncodeToString(s) }

func TestParseLogoAccepts(t *testing.T) {
	t.Parallel()
	pngData := pngBytes(t, 200, 50)
	for name, c := range map[string]struct {
		in, kind string
		data     []byte
	}{
		"plain PNG":              {b64(pngData), KindPNG, pngData},
		"PNG data URL":           {"data:image/png;base64," + b64(pngData), KindPNG, pngData},
		"plain SVG":              {b64([]byte(goodSVG)), KindSVG, []byte(goodSVG)},
		"SVG data URL":           {"data:image/svg+xml;base64," + b64([]byte(goodSVG)), KindSVG, []byte(goodSVG)},
		"SVG wrapped base64":     {wrap76(b64([]byte(goodSVG))), KindSVG, []byte(goodSVG)},
		"SVG without the prolog": {b64([]byte(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"><path d="M0 0h1v1z"/></svg>`)), KindSVG, nil},
	} {
		l, err := ParseLogo(c.in)
		if err != nil {
			t.Errorf("%s: refused: %v", name, err)
			continue
		}
		if l.ContentType != c.kind || (c.data != nil && !bytes.Equal(l.Data, c.data)) {
			t.Errorf("%s: got %s, %d bytes", name, l.ContentType, len(l.Data))
		}
		// The stored form parses to the same logo.
		again, err := ParseLogo(l.DataURL())
		if err != nil || again.DataURL() != l.DataURL() {
			t.Errorf("%s: canonical form does not round-trip: %v", name, err)
		}
	}
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

// The attacks: each logo is refused, naming why.
func TestParseLogoRefuses(t *testing.T) {
	t.Parallel()
	svg := func(body string) string {
		return b64([]byte(`<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" viewBox="0 0 10 10">` + body + `</svg>`))
	}
	pngData := pngBytes(t, 20, 20)
	big := pngBytes(t, 1, 1)
	hugeSide := pngBytes(t, MaxLogoSide+1, 1)
	for name, c := range map[string]struct{ in, want string }{
		"script":                  {svg(`<script>alert(1)</script>`), "<script>"},
		"script, other prefix":    {b64([]byte(`<s:svg xmlns:s="http://www.w3.org/2000/svg"><s:script>alert(1)</s:script></s:svg>`)), "xmlns:s"},
		"script in the XHTML ns":  {svg(`<script xmlns="http://www.w3.org/1999/xhtml">alert(1)</script>`), "outside the SVG namespace"},
		"onload":                  {b64([]byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`)), "event handler onload"},
		"onclick on a shape":      {svg(`<rect width="1" height="1" OnClick="alert(1)"/>`), "event handler OnClick"},
		"xlink:href to http":      {svg(`<use xlink:href="http://evil.example/x.svg#a"/>`), "xlink:href= points outside"},
		"href to javascript":      {svg(`<use href="javascript:alert(1)"/>`), "href= points outside"},
		"href to a data URL":      {svg(`<use href="data:image/svg+xml;base64,PHN2Zy8+"/>`), "points outside"},
		"a link":                  {svg(`<a href="#x"><rect width="1" height="1"/></a>`), "<a>"},
		"image element":           {svg(`<image href="#x"/>`), "<image>"},
		"foreignObject":           {svg(`<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>`), "<foreignObject>"},
		"animate to javascript":   {svg(`<animate attributeName="href" to="javascript:alert(1)"/>`), "<animate>"},
		"set":                     {svg(`<set attributeName="onclick" to="alert(1)"/>`), "<set>"},
		"entity":                  {b64([]byte(`<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]><svg xmlns="http://www.w3.org/2000/svg">&x;</svg>`)), "DOCTYPE or entity"},
		"doctype":                 {b64([]byte(`<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd"><svg xmlns="http://www.w3.org/2000/svg"/>`)), "DOCTYPE"},
		"billion laughs":          {b64([]byte(`<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><svg xmlns="http://www.w3.org/2000/svg"><text>&b;</text></svg>`)), "DOCTYPE or entity"},
		"style url http":          {svg(`<rect width="1" height="1" style="fill: url(http://evil.example/p.svg#a)"/>`), "url() may only point at a local #fragment"},
		"style element url":       {svg(`<style>rect { fill: url( "https://evil.example/x" ) }</style>`), "url() may only point"},
		"style split by CDATA":    {svg(`<style>rect { fill: ur<![CDATA[l(https://evil.example/x)]]> }</style>`), "url() may only point"},
		"style @import":           {svg(`<style>@import "https://evil.example/x.css";</style>`), "at-rules"},
		"style escape":            {svg(`<style>rect { fill: \75 rl(https://evil.example/x) }</style>`), "escapes"},
		"presentation url":        {svg(`<rect width="1" height="1" fill="url(https://evil.example/x#a)"/>`), "url() may only point"},
		"mask url entity":         {svg(`<rect width="1" height="1" mask="&#x75;rl(https://evil.example/x)"/>`), "url() may only point"},
		"stylesheet PI":           {b64([]byte(`<?xml-stylesheet href="https://evil.example/x.css"?><svg xmlns="http://www.w3.org/2000/svg"/>`)), "processing instruction"},
		"other namespace attr":    {svg(`<rect xmlns:ev="http://www.w3.org/2001/xml-events" ev:event="click" width="1" height="1"/>`), "xmlns:ev"},
		"unknown attribute":       {svg(`<rect width="1" height="1" formaction="x"/>`), "formaction="},
		"no namespace":            {b64([]byte(`<svg viewBox="0 0 1 1"/>`)), `must declare xmlns`},
		"html root":               {b64([]byte(`<html xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script></html>`)), "root element must be one <svg>"},
		"not well-formed":         {b64([]byte(`<svg xmlns="http://www.w3.org/2000/svg"><rect></svg>`)), "not well-formed"},
		"text outside text":       {svg(`<g>hello</g>`), "text outside"},
		"markup in CDATA text":    {svg(`<text><![CDATA[<script>alert(1)</script>]]></text>`), "< or > in its text"},
		"latin-1":                 {b64([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><svg xmlns="http://www.w3.org/2000/svg"/>`)), "not well-formed"},
		"not UTF-8":               {b64([]byte("<svg xmlns=\"http://www.w3.org/2000/svg\"><text>\xff</text></svg>")), "not UTF-8"},
		"two roots":               {b64([]byte(`<svg xmlns="http://www.w3.org/2000/svg"/><svg xmlns="http://www.w3.org/2000/svg"/>`)), "one <svg>"},
		"PNG header, SVG body":    {b64(append(append([]byte{}, pngData[:33]...), []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`)...)), "not a valid PNG"},
		"PNG then SVG after IEND": {b64(append(append([]byte{}, pngData...), []byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`)...)), "after its end"},
		"SVG declared PNG":        {"data:image/png;base64," + svg(`<rect width="1" height="1"/>`), "not a PNG"},
		"PNG declared SVG":        {"data:image/svg+xml;base64," + b64(pngData), "not UTF-8"},
		"PNG too wide":            {b64(hugeSide), "each side must be between 1 and 2048"},
		"70 KiB":                  {b64(append(append([]byte{}, big...), make([]byte, 70<<10)...)), "larger than 64 KiB"},
		"70 KiB SVG":              {svg(`<desc>` + strings.Repeat("x", 70<<10) + `</desc>`), "larger than 64 KiB"},
		"JPEG":                    {b64([]byte("\xff\xd8\xff\xe0\x00\x10JFIF")), "neither a PNG nor an SVG"},
		"GIF data URL":            {"data:image/gif;base64,R0lGODlhAQABAAAAACw=", "data:image/png;base64"},
		"URL-encoded data URL":    {"data:image/svg+xml,%3Csvg%2F%3E", "data:image/png;base64"},
		"not base64":              {"<svg/>", "not valid base64"},
		"empty after prefix":      {"data:image/png;base64,", "empty"},
		"http URL":                {"https://bank.example/logo.png", "not valid base64"},
	} {
		_, err := ParseLogo(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: ParseLogo = %v, want an error with %q", name, err, c.want)
		}
	}
}

func TestVersionFollowsContent(t *testing.T) {
	t.Parallel()
	a, b := Version("data:image/png;base64,AAAA"), Version("data:image/png;base64,AAAB")
	if a == b || len(a) != 16 || a != Version("data:image/png;base64,AAAA") {
		t.Errorf("versions %q, %q", a, b)
	}
}

// FuzzParseLogo: ParseLogo never panics; what it accepts is a PNG or an
// SVG whose stored form parses to itself, and an accepted SVG holds none
// of the words an active or loading SVG needs.
func FuzzParseLogo(f *testing.F) {
	f.Add(base64.StdEncoding.EncodeToString([]byte(goodSVG)))
	f.Add("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>`)))
	f.Add("data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString([]byte(`<svg xmlns="http://www.w3.org/2000/svg"><rect style="fill:url(#a)"/></svg>`)))
	f.Add("data:image/png;base64,iVBORw0KGgo=")
	f.Fuzz(func(t *testing.T, in string) {
		l, err := ParseLogo(in)
		if err != nil {
			return
		}
		if l.ContentType != KindPNG && l.ContentType != KindSVG || len(l.Data) == 0 || len(l.Data) > MaxLogoBytes {
			t.Fatalf("accepted %s of %d bytes", l.ContentType, len(l.Data))
		}
		again, err := ParseLogo(l.DataURL())
		if err != nil || again.DataURL() != l.DataURL() {
			t.Fatalf("stored form does not parse to itself: %v", err)
		}
		if stored, err := DecodeStored(l.DataURL()); err != nil || !bytes.Equal(stored.Data, l.Data) {
			t.Fatalf("DecodeStored: %v", err)
		}
		if l.ContentType == KindSVG {
			low := strings.ToLower(string(l.Data))
			for _, w := range []string{"<script", "foreignobject", "<!doctype", "<!entity", "javascript:", "@import", "<iframe", "<image"} {
				if strings.Contains(low, w) {
					t.Fatalf("accepted an SVG with %q: %s", w, l.Data)
				}
			}
		}
	})
}
