package delivery

import (
	htmltemplate "html/template"
	"io"
	"strconv"
	"strings"
	"text/template/parse"

	"github.com/resetd/resetd/internal/i18n"
)

// localPart is a default part as one copy for each shipped language, in
// which every {{.T "id"}} of a message without placeholders is written
// out as its text (see fold). It renders what the part as written
// renders, without the reflected method call and the catalog lookup per
// sentence that were most of a message's cost.
type localPart map[string]executor // shipped language → its copy

// Execute renders the copy of the language d.T speaks; data is a
// TemplateData.
func (p localPart) Execute(w io.Writer, data any) error {
	d, _ := data.(TemplateData)
	return p[d.localizer().Lang()].Execute(w, data)
}

// fold rewrites the tree of a default part for one language: a call
// {{.T "id"}} or {{$.T "id"}} on the TemplateData, for a message that
// l.Fixed knows, becomes the message's text — plain text in a text part
// (asText), a string constant in an HTML part, which html/template then
// escapes for where it stands exactly as it escaped what T returned.
func fold(tree *parse.Tree, l *i18n.Localizer, asText bool) {
	// After {{$ = …}}, $ need not be the data.
	dollarIsData := true
	walk(tree.Root, true, func(n parse.Node, _ bool) {
		if p, ok := n.(*parse.PipeNode); ok {
			for _, v := range p.Decl {
				if v.Ident[0] == "$" {
					dollarIsData = false
				}
			}
		}
	})
	fixed := func(c *parse.CommandNode, dotIsData bool) (*parse.StringNode, string, bool) {
		if len(c.Args) != 2 {
			return nil, "", false
		}
		id, ok := c.Args[1].(*parse.StringNode)
		if !ok {
			return nil, "", false
		}
		switch fn := c.Args[0].(type) {
		case *parse.FieldNode:
			ok = dotIsData && len(fn.Ident) == 1 && fn.Ident[0] == "T"
		case *parse.VariableNode:
			ok = dollarIsData && len(fn.Ident) == 2 && fn.Ident[0] == "$" && fn.Ident[1] == "T"
		default:
			ok = false
		}
		if !ok {
			return nil, "", false
		}
		s, ok := l.Fixed(id.Text)
		return id, s, ok
	}
	walk(tree.Root, true, func(n parse.Node, dotIsData bool) {
		switch n := n.(type) {
		case *parse.ListNode:
			if !asText {
				return
			}
			for i, c := range n.Nodes {
				if a, ok := c.(*parse.ActionNode); ok && len(a.Pipe.Decl) == 0 && len(a.Pipe.Cmds) == 1 {
					if _, s, ok := fixed(a.Pipe.Cmds[0], dotIsData); ok {
						n.Nodes[i] = &parse.TextNode{NodeType: parse.NodeText, Pos: a.Pos, Text: []byte(s)}
					}
				}
			}
		case *parse.PipeNode:
			// Only the first command: a later one is given the result
			// before it as one more argument.
			if len(n.Cmds) == 0 {
				return
			}
			if id, s, ok := fixed(n.Cmds[0], dotIsData); ok {
				// The id's own node now holds the text: T returned a
				// string, and so does this.
				id.Text, id.Quoted = s, strconv.Quote(s)
				n.Cmds[0].Args = []parse.Node{id}
			}
		}
	})
}

// walk calls fn on n and on every list and pipeline under it, saying
// whether dot is the template's data there (it is not inside with and
// range). fn may replace the nodes of a list it is given.
func walk(n parse.Node, dotIsData bool, fn func(n parse.Node, dotIsData bool)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		fn(n, dotIsData)
		for _, c := range n.Nodes {
			walk(c, dotIsData, fn)
		}
	case *parse.PipeNode:
		if n == nil {
			return
		}
		fn(n, dotIsData)
		for _, c := range n.Cmds {
			for _, arg := range c.Args {
				walk(arg, dotIsData, fn)
			}
		}
	case *parse.ActionNode:
		walk(n.Pipe, dotIsData, fn)
	case *parse.IfNode:
		walk(n.Pipe, dotIsData, fn)
		walk(n.List, dotIsData, fn)
		walk(n.ElseList, dotIsData, fn)
	case *parse.WithNode:
		walk(n.Pipe, dotIsData, fn)
		walk(n.List, false, fn)
		walk(n.ElseList, dotIsData, fn)
	case *parse.RangeNode:
		walk(n.Pipe, dotIsData, fn)
		walk(n.List, false, fn)
		walk(n.ElseList, dotIsData, fn)
	case *parse.TemplateNode:
		walk(n.Pipe, dotIsData, fn)
	}
}

// foldEscaped writes out, in the tree of an HTML part that html/template
// has escaped (it does on the first Execute, in place), each action that
// prints a string constant — a sentence fold wrote in — as the text
// html/template made of it: a reflected escaper call fewer per sentence.
// An action whose escaper escapedText does not know stays as it is, so
// another html/template than today's can cost speed, not correctness.
func foldEscaped(tree *parse.Tree) {
	walk(tree.Root, true, func(n parse.Node, _ bool) {
		l, ok := n.(*parse.ListNode)
		if !ok {
			return
		}
		for i, c := range l.Nodes {
			a, ok := c.(*parse.ActionNode)
			if !ok || len(a.Pipe.Decl) != 0 || len(a.Pipe.Cmds) != 2 || len(a.Pipe.Cmds[0].Args) != 1 {
				continue
			}
			str, ok := a.Pipe.Cmds[0].Args[0].(*parse.StringNode)
			if !ok {
				continue
			}
			if s, ok := escapedText(escaperOf(a.Pipe.Cmds[1]), str.Text); ok {
				l.Nodes[i] = &parse.TextNode{NodeType: parse.NodeText, Pos: a.Pos, Text: []byte(s)}
			}
		}
	})
}

// escapedText is what html/template prints for s where it gives an action
// the escaper named escaper, asked of html/template itself in the
// contexts a sentence stands in: element text, a quoted attribute and
// <title>.
func escapedText(escaper, s string) (string, bool) {
	if escaper == "" {
		return "", false
	}
	for _, p := range []struct{ before, after string }{{"", ""}, {`<p title="`, `">`}, {"<title>", "</title>"}} {
		t, err := htmltemplate.New("").Parse(p.before + "{{.}}" + p.after)
		if err != nil {
			return "", false
		}
		var b strings.Builder
		if err := t.Execute(&b, s); err != nil {
			return "", false
		}
		var a *parse.ActionNode
		for _, n := range t.Tree.Root.Nodes {
			if n, ok := n.(*parse.ActionNode); ok {
				a = n
			}
		}
		if a == nil || len(a.Pipe.Cmds) != 2 || escaperOf(a.Pipe.Cmds[1]) != escaper {
			continue
		}
		out, ok := strings.CutPrefix(b.String(), p.before)
		if !ok {
			return "", false
		}
		return strings.CutSuffix(out, p.after)
	}
	return "", false
}

// escaperOf names the function c calls without arguments, as
// html/template appends its escapers to an action's pipeline.
func escaperOf(c *parse.CommandNode) string {
	if len(c.Args) != 1 {
		return ""
	}
	id, ok := c.Args[0].(*parse.IdentifierNode)
	if !ok {
		return ""
	}
	return id.Ident
}
