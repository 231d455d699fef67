package reset

import (
	"context"
	"errors"
	"slices"

	"github.com/resetd/resetd/internal/i18n"
	"github.com/resetd/resetd/internal/store"
)

// Languages is what decides the language of a page: the user's locale
// (when the page belongs to a user), the institution's offered languages
// and its default.
type Languages struct {
	User    string   // the user's locale (BCP 47), "" when unknown
	Offered []string // shipped codes
	Default string
}

// languagesOf are an institution's languages for a user with locale.
func languagesOf(st Settings, locale string) Languages {
	return Languages{User: locale, Offered: slices.Clone(st.Locales), Default: st.DefaultLocale}
}

// Page is the language of a page: the user's locale when it matches an
// offered language, else the browser's Accept-Language matched against
// the offered ones, else the default.
func (l Languages) Page(acceptLanguage string) string {
	if len(l.Offered) == 0 {
		l.Offered, l.Default = i18n.Shipped(), i18n.Default
	}
	if m := i18n.Match(l.Offered, "", l.User); m != "" {
		return m
	}
	return i18n.MatchAccept(l.Offered, l.Default, acceptLanguage)
}

// DefaultLanguages are the default institution's languages, for a page
// reached without a token it can tie to an institution; with no default
// institution, every shipped language and i18n.Default.
func (s *Service) DefaultLanguages(ctx context.Context) (Languages, error) {
	var out Languages
	err := s.store.View(ctx, func(tx store.ReadTx) error {
		inst, err := tx.DefaultInstitution(ctx)
		if errors.Is(err, store.ErrNotFound) {
			out = Languages{Offered: i18n.Shipped(), Default: i18n.Default}
			return nil
		}
		if err != nil {
			return err
		}
		st, err := s.decode(inst)
		if err != nil {
			return err
		}
		out = languagesOf(st, "")
		return nil
	})
	return out, err
}
