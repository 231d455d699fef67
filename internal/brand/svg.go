package brand

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"
)

const (
	svgNS   = "http://www.w3.org/2000/svg"
	xlinkNS = "http://www.w3.org/1999/xlink"
	xmlNS   = "http://www.w3.org/XML/1998/namespace"
)

// svgElements are the elements a logo may use: shapes, text, groups,
// gradients, clips and masks, and <use> of a local fragment. Anything
// else (script, foreignObject, image, a, animate, set, iframe, filters,
// elements of another namespace…) is refused.
var svgElements = set(
	"svg", "g", "defs", "symbol", "use", "title", "desc",
	"path", "rect", "circle", "ellipse", "line", "polyline", "polygon",
	"text", "tspan",
	"linearGradient", "radialGradient", "stop", "clipPath", "mask", "style",
)

// svgAttributes are the attributes (without a namespace) any allowed
// element may carry: geometry, presentation and accessibility. No event
// handler (on*) is on it, nor src, nor anything that loads.
var svgAttributes = set(
	"id", "class", "style", "transform", "version", "baseProfile",
	"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "fx", "fy", "fr",
	"width", "height", "viewBox", "preserveAspectRatio", "d", "points", "pathLength",
	"fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-linecap", "stroke-linejoin",
	"stroke-miterlimit", "stroke-dasharray", "stroke-dashoffset", "stroke-opacity",
	"opacity", "color", "display", "visibility", "overflow", "clip-path", "clip-rule", "mask",
	"vector-effect", "shape-rendering", "text-rendering", "paint-order",
	"font-family", "font-size", "font-weight", "font-style", "font-variant", "font-stretch",
	"text-anchor", "dominant-baseline", "alignment-baseline", "baseline-shift",
	"letter-spacing", "word-spacing", "text-decoration", "textLength", "lengthAdjust", "dx", "dy", "rotate",
	"offset", "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "spreadMethod",
	"clipPathUnits", "maskUnits", "maskContentUnits",
	"role", "aria-label", "aria-labelledby", "aria-describedby", "aria-hidden", "focusable", "lang",
	"href", // only to a local #fragment, checked below
	"type", // of <style>: text/css only, checked below
)

// textElements may hold text; every other element only white space.
var textElements = set("text", "tspan", "title", "desc", "style")

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// maxSVGDepth bounds nesting.
const maxSVGDepth = 32

// localURL is the one form of url() a logo may use: a fragment of itself.
var localURL = regexp.MustCompile(`(?i)url\(\s*(['"]?)#[A-Za-z_][A-Za-z0-9_.:-]*\s*(['"]?)\s*\)`)

// CheckSVG accepts an SVG logo only when everything in it is on an
// allowlist: UTF-8 XML whose root is <svg> in the SVG namespace, the
// elements of svgElements, the attributes of svgAttributes (plus the SVG
// and XLink namespace declarations, xlink:href and xml:space), and no
// reference outside the document: href and xlink:href only to a local
// #fragment, url() in attributes and CSS only to a local #fragment, no
// CSS at-rules (@import, @font-face…) or escapes. A DOCTYPE or entity
// declaration, a processing instruction other than the XML declaration,
// and anything that does not parse are refused. Browsers show a logo as
// an <img> served under its own CSP, where scripts never run: this check
// is the layer before that, so nothing of the kind is ever stored.
func CheckSVG(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("the SVG logo is not UTF-8")
	}
	if bytes.Contains(data, []byte("<!")) {
		// Comments and CDATA are fine; a DOCTYPE, ENTITY or any other
		// declaration is not (the decoder hands those over as one
		// Directive token, checked below too).
		for rest := data; ; {
			i := bytes.Index(rest, []byte("<!"))
			if i < 0 {
				break
			}
			rest = rest[i:]
			if !bytes.HasPrefix(rest, []byte("<!--")) && !bytes.HasPrefix(rest, []byte("<![CDATA[")) {
				return errors.New("the SVG logo has a DOCTYPE or entity declaration")
			}
			rest = rest[2:]
		}
	}
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	// No CharsetReader: a declared encoding other than UTF-8 fails.
	depth, roots := 0, 0
	var stack []string
	// A <style>'s text may come in pieces (text, then CDATA): it is
	// checked whole, at its end.
	var css strings.Builder
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return errors.New("the SVG logo is not well-formed XML: " + strings.TrimPrefix(err.Error(), "XML syntax error on "))
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 || t.Name.Local != "svg" {
					return errors.New("the SVG logo's root element must be one <svg>")
				}
			}
			depth++
			if depth > maxSVGDepth {
				return fmt.Errorf("the SVG logo nests deeper than %d elements", maxSVGDepth)
			}
			if err := checkSVGElement(t, depth == 1); err != nil {
				return err
			}
			stack = append(stack, t.Name.Local)
		case xml.EndElement:
			if stack[len(stack)-1] == "style" {
				if err := checkCSS(css.String()); err != nil {
					return fmt.Errorf("the SVG logo's <style>: %w", err)
				}
				css.Reset()
			}
			depth--
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if depth == 0 || !textElements[stack[len(stack)-1]] {
				if len(bytes.TrimSpace(t)) > 0 {
					return errors.New("the SVG logo has text outside <text>, <tspan>, <title>, <desc> and <style>")
				}
				continue
			}
			// A logo's text has no use for markup characters, which CDATA
			// or &lt; could slip past a reader of the raw bytes.
			if bytes.ContainsAny(t, "<>") {
				return errors.New("the SVG logo has < or > in its text")
			}
			if stack[len(stack)-1] == "style" {
				css.Write(t)
			}
		case xml.Comment:
		case xml.ProcInst:
			if t.Target != "xml" {
				return fmt.Errorf("the SVG logo has a processing instruction <?%s?>", t.Target)
			}
		case xml.Directive:
			return errors.New("the SVG logo has a DOCTYPE or entity declaration")
		default:
			return fmt.Errorf("the SVG logo has an unexpected %T", tok)
		}
	}
	if roots != 1 {
		return errors.New("the logo is neither a PNG nor an SVG")
	}
	return nil
}

func checkSVGElement(t xml.StartElement, root bool) error {
	name := t.Name.Local
	if t.Name.Space != svgNS {
		if root && t.Name.Space == "" {
			return errors.New(`the SVG logo's <svg> must declare xmlns="http://www.w3.org/2000/svg"`)
		}
		return fmt.Errorf("the SVG logo has <%s> outside the SVG namespace", name)
	}
	if !svgElements[name] {
		return fmt.Errorf("the SVG logo has <%s>, which a logo may not use", name)
	}
	for _, a := range t.Attr {
		if err := checkSVGAttr(name, a); err != nil {
			return err
		}
	}
	return nil
}

func checkSVGAttr(elem string, a xml.Attr) error {
	n, v := a.Name, a.Value
	switch {
	case n.Space == "" && n.Local == "xmlns":
		if v != svgNS {
			return fmt.Errorf("the SVG logo declares the default namespace %q, not SVG's", v)
		}
		return nil
	case n.Space == "xmlns":
		if n.Local != "xlink" || v != xlinkNS {
			return fmt.Errorf("the SVG logo declares the namespace xmlns:%s, which a logo may not use", n.Local)
		}
		return nil
	case n.Space == xmlNS && (n.Local == "space" || n.Local == "lang"):
		return nil
	case n.Space == xlinkNS && n.Local == "href":
		return checkHref("xlink:href", v)
	case n.Space != "":
		return fmt.Errorf("the SVG logo has the attribute %s:%s, which a logo may not use", n.Space, n.Local)
	}
	if !svgAttributes[n.Local] {
		if strings.HasPrefix(strings.ToLower(n.Local), "on") {
			return fmt.Errorf("the SVG logo has the event handler %s=", n.Local)
		}
		return fmt.Errorf("the SVG logo has the attribute %s=, which a logo may not use", n.Local)
	}
	switch n.Local {
	case "href":
		return checkHref("href", v)
	case "type":
		if elem != "style" || strings.ToLower(strings.TrimSpace(v)) != "text/css" {
			return errors.New(`the SVG logo has a type= other than type="text/css" on <style>`)
		}
	case "style":
		if err := checkCSS(v); err != nil {
			return fmt.Errorf("the SVG logo's style= attribute: %w", err)
		}
	default:
		if err := checkURLs(v); err != nil {
			return fmt.Errorf("the SVG logo's %s= attribute: %w", n.Local, err)
		}
	}
	return nil
}

func checkHref(name, v string) error {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "#") || len(v) < 2 || strings.ContainsAny(v, " \t\r\n()'\"") {
		return fmt.Errorf("the SVG logo's %s= points outside the logo (%.60q); only a local #fragment may be referenced", name, v)
	}
	return nil
}

// checkURLs refuses any url() but url(#fragment).
func checkURLs(v string) error {
	rest := localURL.ReplaceAllString(v, "")
	if strings.Contains(strings.ToLower(rest), "url(") {
		return errors.New("url() may only point at a local #fragment")
	}
	return nil
}

// checkCSS is checkURLs plus what CSS could use to load or hide things:
// at-rules (@import, @font-face), escapes (which spell "url" another
// way), expression() and script URLs.
func checkCSS(css string) error {
	l := strings.ToLower(css)
	switch {
	case strings.Contains(l, "@"):
		return errors.New("CSS at-rules (@import, @font-face…) are not allowed")
	case strings.Contains(l, `\`):
		return errors.New("CSS escapes are not allowed")
	case strings.Contains(l, "expression("), strings.Contains(l, "javascript:"), strings.Contains(l, "image-set("),
		strings.Contains(l, "binding"), strings.Contains(l, "behavior"), strings.Contains(l, "<"):
		return errors.New("CSS may hold no expression(), image-set(), binding, behavior, script URL or markup")
	}
	return checkURLs(css)
}
