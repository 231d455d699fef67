package reset

import (
	"encoding/hex"
	"maps"
	"regexp"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Knowledge facts a user record may hold (SPEC §7).
const (
	FactDateOfBirth  = "dateOfBirth"
	FactAccountLast4 = "accountLast4"
	FactPostalCode   = "postalCode"
)

// FactNames lists the facts resetd knows.
var FactNames = []string{FactDateOfBirth, FactAccountLast4, FactPostalCode}

// Fact formats (SPEC §10), checked on the value as given (trimmed).
var (
	accountLast4Format = regexp.MustCompile(`^[0-9]{4}$`)
	postalCodeFormat   = regexp.MustCompile(`^[A-Za-z0-9 -]{2,12}$`)
)

// validFact reports whether a fact's value has its format: a date of
// birth is a real calendar date, not in the future and not before 1900;
// the last four of an account are four digits; a postal code is 2 to 12
// letters, digits, spaces or hyphens.
func validFact(name, v string, now time.Time) (known, ok bool) {
	v = strings.TrimSpace(v)
	switch name {
	case FactDateOfBirth:
		d, err := time.Parse(time.DateOnly, v)
		return true, err == nil && d.Year() >= 1900 && !d.After(now.UTC())
	case FactAccountLast4:
		return true, accountLast4Format.MatchString(v)
	case FactPostalCode:
		return true, postalCodeFormat.MatchString(v)
	}
	return false, false
}

var factFormatHelp = map[string]string{
	FactDateOfBirth:  "a real date as YYYY-MM-DD, from 1900 and not in the future",
	FactAccountLast4: "exactly four digits",
	FactPostalCode:   "2 to 12 letters, digits, spaces or hyphens",
}

// normalizeFact trims, lower-cases and removes inner spaces, so "SW1A 1AA"
// and "sw1a1aa" are one postal code.
func normalizeFact(v string) string {
	return strings.ToLower(strings.Join(strings.Fields(v), ""))
}

func factData(institutionID, userID, name, value string) []byte {
	return []byte(institutionID + "\x00" + userID + "\x00" + name + "\x00" + normalizeFact(value))
}

// factMAC is a fact's stored form: hex of a MAC tagged with the key that
// made it (seal.TaggedMAC), so a rotation can tell what is left on OLD.
func (s *Service) factMAC(institutionID, userID, name, value string) string {
	return hex.EncodeToString(s.key.TaggedMAC("fact", factData(institutionID, userID, name, value)))
}

// hashFacts validates and hashes facts given on a user PUT.
func (s *Service) hashFacts(institutionID, userID string, facts map[string]string, now time.Time) (map[string]string, error) {
	out := map[string]string{}
	for name, v := range facts {
		known, ok := validFact(name, v, now)
		if !known {
			return nil, invalid("facts", "unknown fact "+quote(name)+"; known: "+strings.Join(FactNames, ", "))
		}
		if !ok {
			return nil, invalid("facts", "fact "+name+" is malformed: "+factFormatHelp[name])
		}
		out[name] = s.factMAC(institutionID, userID, name, v)
	}
	return out, nil
}

func quote(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return `"` + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s) + `"`
}

// factsMatch reports whether given facts meet every fact the institution
// requires. A user without a stored fact never matches it: a fact cannot
// be skipped by not having one. When they match and some fact was keyed
// under an older key of the ring, rekeyed is the user's facts keyed anew
// under the current key, for the caller to store in its transaction
// (SPEC §9: a fact is re-keyed when it next verifies); else nil.
func (s *Service) factsMatch(st Settings, u store.User, given map[string]string) (ok bool, rekeyed map[string]string) {
	ok = true
	stale := false
	for _, name := range st.RequireFacts {
		want, err := hex.DecodeString(u.Facts[name])
		// Compare every fact, even after a miss: no timing hint of which.
		match, current := s.key.VerifyMAC("fact", factData(u.InstitutionID, u.ID, name, given[name]), want)
		if err != nil || len(want) == 0 || given[name] == "" || !match {
			ok = false
		}
		if match && !current {
			stale = true
		}
	}
	if !ok || !stale {
		return ok, nil
	}
	rekeyed = maps.Clone(u.Facts)
	for _, name := range st.RequireFacts {
		rekeyed[name] = s.factMAC(u.InstitutionID, u.ID, name, given[name])
	}
	return true, rekeyed
}
