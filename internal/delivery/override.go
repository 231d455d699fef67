package delivery

import (
	"fmt"
	"html"
	htmltemplate "html/template"
	"io"
	"maps"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"text/template/parse"

	"github.com/resetd/resetd/internal/config"
)

// Limits on an institution's template overrides (SPEC §11).
const (
	// MaxOverrideBytes bounds one override's source.
	MaxOverrideBytes = 16 << 10
	// MaxMessageBytes bounds a rendered message: an email's subject, text
	// and HTML together, or an SMS.
	MaxMessageBytes = 64 << 10
)

// Placeholders are the only fields an override may name; Changed is what
// a contact_changed notice says was replaced ("email address").
var Placeholders = []string{"DisplayName", "UserName", "Link", "DisputeLink", "Code", "ExpiresIn", "Changed"}

// OverrideRules are what an institution's overrides are checked against.
type OverrideRules struct {
	// LinkBases are the only absolute URLs an HTML override may contain,
	// together with URLs below them.
	LinkBases []string
	// MaxLen is the longest value, in bytes, each placeholder can take for
	// this institution; it bounds the rendered size at PUT.
	MaxLen map[string]int
}

// TemplateError is a refused override: which part, where, and why.
type TemplateError struct {
	Key    string // e.g. "reset_link.email.html"
	Pos    string // "line:column" in the override, "" for the whole part
	Reason string
}

func (e *TemplateError) Error() string {
	if e.Pos == "" {
		return "delivery: template " + e.Key + ": " + e.Reason
	}
	return "delivery: template " + e.Key + " at " + e.Pos + ": " + e.Reason
}

// overrideData is what an override renders: the placeholders as text, so
// {{.ExpiresIn}} reads "60 minutes" without a function call.
type overrideData struct {
	DisplayName, UserName, Link, DisputeLink, Code, ExpiresIn, Changed string
}

func toOverrideData(d TemplateData) overrideData {
	w := d.texts
	if w == nil {
		w = d.words()
	}
	return overrideData{
		DisplayName: d.DisplayName, UserName: d.UserName, Link: d.Link, DisputeLink: d.DisputeLink,
		Code: d.Code, Changed: w["Changed"].(string), ExpiresIn: w["ExpiresIn"].(string),
	}
}

// overridePart is a checked, parsed override and the most bytes it can render.
type overridePart struct {
	ex    executor
	bound int
}

// Execute renders the override; data is a TemplateData.
func (p overridePart) Execute(w io.Writer, data any) error {
	d, _ := data.(TemplateData)
	return p.ex.Execute(w, toOverrideData(d))
}

const allowedHint = "an override may use only the placeholders {{.DisplayName}}, {{.UserName}}, {{.Link}}, {{.DisputeLink}}, {{.Code}}, {{.ExpiresIn}}, {{.Changed}} and {{if .Field}}…{{else}}…{{end}} on them"

// checkOverride parses src as the override of key: it walks the parse
// tree and refuses any construct but text, a placeholder and if, checks
// an HTML part's URLs and contexts, and bounds what it can render.
func checkOverride(key, src string, rules OverrideRules) (overridePart, error) {
	if len(src) > MaxOverrideBytes {
		return overridePart{}, &TemplateError{Key: key, Reason: fmt.Sprintf("override is %d bytes, at most %d", len(src), MaxOverrideBytes)}
	}
	isHTML := strings.HasSuffix(key, ".html")
	// SkipFuncCheck lets an unknown function parse, so the refusal can
	// name it instead of a parser error.
	tr := parse.New(key)
	tr.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := tr.Parse(src, "", "", trees); err != nil {
		return overridePart{}, &TemplateError{Key: key, Reason: strings.TrimPrefix(err.Error(), "template: ")}
	}
	// A define is a tree of its own, even one named like the part (which
	// would replace the part's body unseen by the walk below).
	for _, name := range slices.Sorted(maps.Keys(trees)) {
		if t := trees[name]; t != tr {
			return overridePart{}, refuse(key, src, t.Root, "define is not allowed")
		}
	}
	w := walker{key: key, src: src, html: isHTML, rules: rules}
	bound, err := w.list(tr.Root)
	if err != nil {
		return overridePart{}, err
	}
	if bound > MaxMessageBytes {
		return overridePart{}, &TemplateError{Key: key, Reason: fmt.Sprintf("renders up to %d bytes with the longest values, at most %d", bound, MaxMessageBytes)}
	}

	var ex executor
	if isHTML {
		h, err := htmltemplate.New(key).Parse(src)
		if err != nil {
			return overridePart{}, &TemplateError{Key: key, Reason: strings.TrimPrefix(err.Error(), "template: ")}
		}
		// Executing escapes the tree: html/template's own parser then tells
		// in which context (text, attribute, URL, CSS, script) each
		// placeholder stands.
		if err := h.Execute(io.Discard, overrideData{DisplayName: "x", Link: "https://x.example/"}); err != nil {
			return overridePart{}, &TemplateError{Key: key, Reason: strings.TrimPrefix(err.Error(), "html/template:")}
		}
		if err := checkContexts(key, src, h.Tree.Root); err != nil {
			return overridePart{}, err
		}
		ex = h
	} else {
		t, err := texttemplate.New(key).Parse(src)
		if err != nil {
			return overridePart{}, &TemplateError{Key: key, Reason: strings.TrimPrefix(err.Error(), "template: ")}
		}
		ex = t
	}
	return overridePart{ex: ex, bound: bound}, nil
}

// refuse names where n stands in src: the line and column (from 1) of
// the action that holds it, or of the text it is.
func refuse(key, src string, n parse.Node, reason string) error {
	p := min(max(int(n.Position()), 0), len(src))
	if _, isText := n.(*parse.TextNode); !isText {
		if i := strings.LastIndex(src[:p], "{{"); i >= 0 {
			p = i
		}
	}
	line := 1 + strings.Count(src[:p], "\n")
	col := p - strings.LastIndex(src[:p], "\n")
	return &TemplateError{Key: key, Pos: fmt.Sprintf("line %d, column %d", line, col), Reason: reason + "; " + allowedHint}
}

type walker struct {
	key   string
	src   string
	html  bool
	rules OverrideRules
}

// list checks the nodes and returns the most bytes they can render.
func (w walker) list(l *parse.ListNode) (int, error) {
	if l == nil {
		return 0, nil
	}
	total := 0
	for _, n := range l.Nodes {
		size, err := w.node(n)
		if err != nil {
			return 0, err
		}
		total += size
	}
	return total, nil
}

func (w walker) node(n parse.Node) (int, error) {
	switch n := n.(type) {
	case *parse.TextNode:
		if w.html {
			if err := w.urls(n); err != nil {
				return 0, err
			}
		}
		return len(n.Text), nil
	case *parse.ActionNode:
		field, err := w.placeholder(n, n.Pipe)
		if err != nil {
			return 0, err
		}
		size := w.rules.MaxLen[field]
		if w.html {
			size *= 6 // the longest escape of one byte: " → &#34;, and so on
		}
		return size, nil
	case *parse.IfNode:
		if _, err := w.placeholder(n, n.Pipe); err != nil {
			return 0, err
		}
		a, err := w.list(n.List)
		if err != nil {
			return 0, err
		}
		b, err := w.list(n.ElseList)
		if err != nil {
			return 0, err
		}
		return max(a, b), nil
	case *parse.CommentNode:
		return 0, nil
	case *parse.RangeNode:
		return 0, refuse(w.key, w.src, n, "range is not allowed")
	case *parse.WithNode:
		return 0, refuse(w.key, w.src, n, "with is not allowed")
	case *parse.TemplateNode:
		// {{block}} parses to a define and a template call.
		return 0, refuse(w.key, w.src, n, "template is not allowed")
	case *parse.BreakNode, *parse.ContinueNode:
		return 0, refuse(w.key, w.src, n, n.String()+" is not allowed")
	default:
		return 0, refuse(w.key, w.src, n, fmt.Sprintf("%s is not allowed", n))
	}
}

// placeholder accepts a pipeline that is exactly one known field.
func (w walker) placeholder(at parse.Node, p *parse.PipeNode) (string, error) {
	if p == nil {
		return "", refuse(w.key, w.src, at, "an empty action is not allowed")
	}
	if len(p.Decl) > 0 {
		return "", refuse(w.key, w.src, p, "a variable is not allowed")
	}
	if len(p.Cmds) != 1 {
		return "", refuse(w.key, w.src, p, "a pipeline is not allowed")
	}
	cmd := p.Cmds[0]
	if len(cmd.Args) != 1 {
		if id, ok := cmd.Args[0].(*parse.IdentifierNode); ok {
			return "", refuse(w.key, w.src, cmd, "the function call "+strconv.Quote(id.Ident)+" is not allowed")
		}
		return "", refuse(w.key, w.src, cmd, "a function call is not allowed")
	}
	switch a := cmd.Args[0].(type) {
	case *parse.FieldNode:
		if len(a.Ident) != 1 || !isPlaceholder(a.Ident[0]) {
			return "", refuse(w.key, w.src, a, strconv.Quote(a.String())+" is not a placeholder")
		}
		return a.Ident[0], nil
	case *parse.IdentifierNode:
		return "", refuse(w.key, w.src, a, "the function call "+strconv.Quote(a.Ident)+" is not allowed")
	case *parse.VariableNode:
		return "", refuse(w.key, w.src, a, "the variable "+strconv.Quote(a.String())+" is not allowed")
	case *parse.DotNode:
		return "", refuse(w.key, w.src, a, `"." is not allowed`)
	case *parse.PipeNode:
		return "", refuse(w.key, w.src, a, "a parenthesized pipeline is not allowed")
	case *parse.ChainNode:
		return "", refuse(w.key, w.src, a, "a field chain is not allowed")
	default:
		return "", refuse(w.key, w.src, a, "the constant "+strconv.Quote(a.String())+" is not allowed")
	}
}

func isPlaceholder(name string) bool {
	for _, p := range Placeholders {
		if p == name {
			return true
		}
	}
	return false
}

// linkFields are resetd's own URLs: the only placeholders that may stand
// in an attribute, where a tenant-chosen value (a user name) could become
// a URL that carries the link elsewhere.
func linkField(name string) bool { return name == "Link" || name == "DisputeLink" }

// textEscapers put a value in element text; urlEscapers in an attribute
// or URL. html/template appends them to each action when it escapes.
var (
	textEscapers = map[string]bool{"_html_template_htmlescaper": true, "_html_template_rcdataescaper": true}
	urlEscapers  = map[string]bool{
		"_html_template_htmlescaper": true, "_html_template_rcdataescaper": true,
		"_html_template_attrescaper": true, "_html_template_urlfilter": true,
		"_html_template_urlnormalizer": true, "_html_template_urlescaper": true,
		"_html_template_nospaceescaper": true,
	}
)

// checkContexts walks an escaped HTML tree: a placeholder in CSS, a
// script, a comment or an attribute name is refused, and only the links
// may stand inside a tag.
func checkContexts(key, src string, l *parse.ListNode) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			if len(n.Pipe.Cmds) == 0 || len(n.Pipe.Cmds[0].Args) == 0 {
				return refuse(key, src, n, "an empty action is not allowed")
			}
			f, ok := n.Pipe.Cmds[0].Args[0].(*parse.FieldNode)
			if !ok {
				return refuse(key, src, n, "only a placeholder may stand in an action")
			}
			field := f.Ident[0]
			allowed := textEscapers
			if linkField(field) {
				allowed = urlEscapers
			}
			if len(n.Pipe.Cmds) == 1 {
				return refuse(key, src, n, "{{."+field+"}} stands where it cannot be escaped")
			}
			for _, c := range n.Pipe.Cmds[1:] {
				id, ok := c.Args[0].(*parse.IdentifierNode)
				if !ok || !allowed[id.Ident] {
					where := "inside a tag (only {{.Link}} and {{.DisputeLink}} may stand in an attribute)"
					if ok && (strings.Contains(id.Ident, "css") || strings.Contains(id.Ident, "js")) {
						where = "in CSS or a script"
					}
					return refuse(key, src, n, "{{."+field+"}} stands "+where)
				}
			}
		case *parse.IfNode:
			if err := checkContexts(key, src, n.List); err != nil {
				return err
			}
			if err := checkContexts(key, src, n.ElseList); err != nil {
				return err
			}
		}
	}
	return nil
}

// clean drops what a URL parser drops and reads a backslash as a slash.
var clean = strings.NewReplacer("\t", "", "\n", "", "\r", "", `\`, "/")

var cssEscape = regexp.MustCompile(`\\([0-9a-fA-F]{1,6})[ \t\n\r\f]?|\\(.)`)

// urls refuses an absolute URL in HTML text (attributes, CSS, anywhere)
// unless it lies under one of the institution's link bases. The text is
// decoded the way a mail client would (entities, CSS escapes, tabs and
// newlines dropped, backslashes read as slashes) so an obfuscated URL is
// seen too; anything naming a host ("//") counts as a URL.
func (w walker) urls(n *parse.TextNode) error {
	s := html.UnescapeString(string(n.Text))
	css := cssEscape.ReplaceAllStringFunc(s, func(m string) string {
		sub := cssEscape.FindStringSubmatch(m)
		if sub[1] != "" {
			r, err := strconv.ParseUint(sub[1], 16, 32)
			if err != nil {
				return "\uFFFD"
			}
			return string(rune(r))
		}
		return sub[2]
	})
	// Outside CSS a backslash is itself; inside it escapes: read both ways.
	for _, s := range []string{clean.Replace(s), clean.Replace(css)} {
		if u, ok := w.foreignURL(s); ok {
			return refuse(w.key, w.src, n, fmt.Sprintf("the absolute URL %q is not under the institution's linkBases", u))
		}
	}
	return nil
}

// specialScheme finds "https:" and its kin: a browser reads
// "https:collector.example/p.gif" as https://collector.example/p.gif.
var specialScheme = regexp.MustCompile(`(?i)(https?|ftps?|wss?):`)

// foreignURL finds the first URL in s that is not under a link base:
// anything naming a host ("//…") or a web scheme ("https:…").
func (w walker) foreignURL(s string) (string, bool) {
	var starts []int
	for i := 0; ; {
		j := strings.Index(s[i:], "//")
		if j < 0 {
			break
		}
		starts = append(starts, i+j)
		i += j + 2
	}
	for _, m := range specialScheme.FindAllStringIndex(s, -1) {
		starts = append(starts, m[1]) // just after the colon
	}
	for _, at := range starts {
		start := at
		if start > 0 && s[start-1] == ':' {
			start--
			for start > 0 && isSchemeByte(s[start-1]) {
				start--
			}
		}
		end := at
		for end < len(s) && !strings.ContainsRune(" \f\"'<>()`,;", rune(s[end])) {
			end++
		}
		if u := s[start:end]; !w.underLinkBase(u) {
			return u, true
		}
	}
	return "", false
}

func isSchemeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'
}

// underLinkBase reports whether raw names a linkBase or a path below one:
// same scheme, host and port, no user info, and a cleaned path that stays
// inside the base's (so /reset/../collector does not pass).
func (w walker) underLinkBase(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Opaque != "" || u.Host == "" {
		return false
	}
	for _, b := range w.rules.LinkBases {
		base, err := url.Parse(b)
		if err != nil {
			continue
		}
		if !strings.EqualFold(u.Scheme, base.Scheme) || !strings.EqualFold(u.Host, base.Host) {
			continue
		}
		bp := config.BaseURL(base.Path)
		p := u.Path
		if p != "" {
			p = path.Clean(p)
		}
		if p == bp || strings.HasPrefix(p, bp+"/") || (bp == "" && p == "") {
			return true
		}
	}
	return false
}
