package web

import (
	"net/url"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/reset"
)

// Knowledge facts (SPEC §7): when an institution's settings name facts in
// requireFacts, the form of a link's session and the code page ask for
// them, and the domain checks them with the password change or the code.
// They are secrets the customer knows, so the page never writes a value
// back into a field, and a wrong one gets one generic answer that does not
// say which was wrong (the domain already counts it as a wrong try).

// factSpec is how the page asks for one fact; its words are message ids.
type factSpec struct {
	label, hint  string
	missing      string // the error when left empty
	malformed    string // the error when it cannot be a value of this fact; "" if anything goes
	autocomplete string
	inputMode    string
	maxLength    int
	pattern      string
	// normalize returns the value the domain gets, or ok false when the
	// input cannot be one. The domain itself trims, lower-cases and drops
	// inner spaces; this only forgives the formats people type.
	normalize func(string) (string, bool)
}

// factSpecs holds the facts reset.FactNames lists; a name missing here is
// asked for as plain text with its name as the label (see factField).
var factSpecs = map[string]factSpec{
	reset.FactDateOfBirth: {
		label:        "facts.dob_label",
		hint:         "facts.dob_hint",
		missing:      "facts.dob_missing",
		malformed:    "facts.dob_malformed",
		autocomplete: "bday",
		normalize:    normalizeDate,
	},
	reset.FactAccountLast4: {
		label:        "facts.last4_label",
		hint:         "facts.last4_hint",
		missing:      "facts.last4_missing",
		malformed:    "facts.last4_malformed",
		autocomplete: "off",
		inputMode:    "numeric",
		maxLength:    4,
		pattern:      "[0-9]{4}",
		normalize: func(v string) (string, bool) {
			v = strings.Join(strings.Fields(v), "")
			return v, len(v) == 4 && reset.AllDigits(v)
		},
	},
	reset.FactPostalCode: {
		label:        "facts.postal_label",
		missing:      "facts.postal_missing",
		autocomplete: "postal-code",
		maxLength:    16,
		normalize:    func(v string) (string, bool) { return strings.TrimSpace(v), true },
	},
}

// normalizeDate accepts YYYY-MM-DD and what people type for it (single
// digits, slashes or dots, no separators) and returns YYYY-MM-DD.
func normalizeDate(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if len(v) == 8 && reset.AllDigits(v) {
		v = v[:4] + "-" + v[4:6] + "-" + v[6:]
	}
	v = strings.NewReplacer("/", "-", ".", "-", " ", "").Replace(v)
	d, err := time.Parse("2006-1-2", v)
	if err != nil {
		return "", false
	}
	return d.Format(time.DateOnly), true
}

// factField is one fact's input as a template draws it. Value is never
// set from what was posted: facts are not written back.
type factField struct {
	Name         string // the form field's name and id: the fact's name
	Label        string // message ids, written by the page's T
	Hint         string
	Error        string
	Autocomplete string
	InputMode    string
	MaxLength    int
	Pattern      string
	DescribedBy  string // ids of the hint and errors that describe it
}

func specFor(name string) factSpec {
	if sp, ok := factSpecs[name]; ok {
		return sp
	}
	return factSpec{label: name, missing: "facts.other_missing", autocomplete: "off",
		normalize: func(v string) (string, bool) { return strings.TrimSpace(v), true }}
}

// factFields lays out the fields for the required facts, in the
// institution's order.
func factFields(required []string) []factField {
	out := make([]factField, 0, len(required))
	for _, name := range required {
		sp := specFor(name)
		out = append(out, factField{
			Name: name, Label: sp.label, Hint: sp.hint, Autocomplete: sp.autocomplete,
			InputMode: sp.inputMode, MaxLength: sp.maxLength, Pattern: sp.pattern,
		})
	}
	return out
}

// readFacts takes the required facts from a posted form. It returns the
// values for the domain, and the fields with an error on each one missing
// or malformed (bad is true if any): such a form is sent back without
// asking the domain, which costs the customer no try.
func readFacts(required []string, form url.Values) (facts map[string]string, fields []factField, bad bool) {
	fields = factFields(required)
	if len(required) == 0 {
		return nil, fields, false
	}
	facts = make(map[string]string, len(required))
	for i, name := range required {
		sp := specFor(name)
		raw := form.Get(name)
		v, ok := sp.normalize(raw)
		switch {
		case strings.TrimSpace(raw) == "":
			fields[i].Error, bad = sp.missing, true
		case !ok:
			fields[i].Error, bad = sp.malformed, true
		default:
			facts[name] = v
		}
	}
	return facts, fields, bad
}

// describe fills each field's aria-describedby: the generic error (when
// the facts as a whole were refused), its own error, its hint.
func describe(fields []factField, generic bool) {
	for i := range fields {
		var ids []string
		if generic {
			ids = append(ids, "facts-error")
		}
		if fields[i].Error != "" {
			ids = append(ids, fields[i].Name+"-error")
		}
		if fields[i].Hint != "" {
			ids = append(ids, fields[i].Name+"-hint")
		}
		fields[i].DescribedBy = strings.Join(ids, " ")
	}
}

// firstFactError is the id of the first fact field with an error, "" if none.
func firstFactError(fields []factField) string {
	for _, f := range fields {
		if f.Error != "" {
			return f.Name
		}
	}
	return ""
}
