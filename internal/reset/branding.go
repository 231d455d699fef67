package reset

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/resetd/resetd/internal/brand"
	"github.com/resetd/resetd/internal/store"
)

// Branding is what the reset page shows of an institution's brand.
type Branding struct {
	InstitutionID string
	DisplayName   string
	// BrandColor is "#rrggbb" (white text on it is readable), "" for the
	// page's own colours.
	BrandColor string
	// LogoVersion names the logo's content ("" when there is none); the
	// page puts it into the logo's URL.
	LogoVersion string
	SignInURL   string
	SupportURL  string
}

// Branding is the brand of the institution id whose settings st are.
func (st Settings) Branding(id string) Branding {
	b := Branding{InstitutionID: id, DisplayName: st.DisplayName, BrandColor: st.BrandColor, SignInURL: st.SignInURL, SupportURL: st.SupportURL}
	if st.Logo != "" {
		b.LogoVersion = brand.Version(st.Logo)
	}
	return b
}

func (p SettingsPatch) applyBranding(s *Settings) {
	for _, f := range []struct {
		dst *string
		v   *string
	}{{&s.BrandColor, p.BrandColor}, {&s.Logo, p.Logo}, {&s.SignInURL, p.SignInURL}, {&s.SupportURL, p.SupportURL}} {
		if f.v != nil {
			*f.dst = *f.v
		}
	}
}

// unprocessable is a well-formed value refused for what it is: a setting
// out of range, 400 like every other.
func unprocessable(field, detail string) error {
	return &InvalidError{Field: field, Detail: detail}
}

// normalizeBranding checks the patch's branding values and puts them in
// their stored form (a colour in lower case, a logo as a data: URL), so
// what is stored is what was checked. It runs before the write
// transaction: decoding a PNG takes a while.
func (p *SettingsPatch) normalizeBranding() error {
	if p.BrandColor != nil && *p.BrandColor != "" {
		c, err := brand.ParseColor(*p.BrandColor)
		if err != nil {
			return unprocessable("brandColor", "brandColor: "+err.Error())
		}
		p.BrandColor = &c
	}
	if p.Logo != nil && *p.Logo != "" {
		l, err := brand.ParseLogo(*p.Logo)
		if err != nil {
			return unprocessable("logo", "logo: "+err.Error())
		}
		u := l.DataURL()
		p.Logo = &u
	}
	return nil
}

// validateBranding checks stored branding: each value must be in the form
// normalizeBranding gives it.
func (s Settings) validateBranding() error {
	if s.BrandColor != "" {
		if c, err := brand.ParseColor(s.BrandColor); err != nil {
			return unprocessable("brandColor", "brandColor: "+err.Error())
		} else if c != s.BrandColor {
			return unprocessable("brandColor", "brandColor: must be in lower case")
		}
	}
	if s.Logo != "" {
		l, err := brand.ParseLogo(s.Logo)
		if err != nil {
			return unprocessable("logo", "logo: "+err.Error())
		}
		if l.DataURL() != s.Logo {
			return unprocessable("logo", "logo: must be in its canonical data: URL form")
		}
	}
	for _, f := range []struct{ name, v string }{{"signInUrl", s.SignInURL}, {"supportUrl", s.SupportURL}} {
		if f.v == "" {
			continue
		}
		if err := validatePageLink(f.v); err != nil {
			return unprocessable(f.name, f.name+": "+err.Error())
		}
	}
	return nil
}

// validatePageLink accepts what the page may link a customer to: an
// absolute https URL with a host and no user info (no http, javascript:,
// data:, relative or scheme-relative URL).
func validatePageLink(raw string) error {
	if len(raw) > 2000 || !printable(raw) {
		return fmt.Errorf("%.80q is not a valid URL", raw)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return fmt.Errorf("%.80q is not an absolute URL", raw)
	case u.IsAbs() && u.Scheme != "https":
		return fmt.Errorf("%.80q must use https", raw)
	case !u.IsAbs() || u.Opaque != "":
		return fmt.Errorf("%.80q is not an absolute URL", raw)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%.80q has no host", raw)
	case u.User != nil:
		return fmt.Errorf("%.80q must not hold a user name or password", raw)
	}
	return nil
}

// Logo returns an institution's logo, checked when it was set: ErrNotFound
// for an unknown institution or one without a logo.
func (s *Service) Logo(ctx context.Context, institutionID string) (brand.Logo, error) {
	st, err := s.Settings(ctx, institutionID)
	if err != nil {
		return brand.Logo{}, err
	}
	if st.Logo == "" {
		return brand.Logo{}, &NotFoundError{What: "logo"}
	}
	l, err := brand.DecodeStored(st.Logo)
	if err != nil {
		return brand.Logo{}, fmt.Errorf("reset: logo of %s: %w", institutionID, err)
	}
	return l, nil
}

// GoneBranding is the brand of a dead link's page: the institution of the
// token (in any state, while its row is kept), or the default
// institution's when the token is unknown, or none.
func (s *Service) GoneBranding(ctx context.Context, tok string) (Branding, error) {
	var b Branding
	err := s.store.View(ctx, func(tx store.ReadTx) error {
		var in store.Institution
		err := store.ErrNotFound
		if wellFormedToken(tok) {
			var id string
			if id, err = tx.TokenInstitution(ctx, hashToken(tok)); err == nil {
				in, err = tx.Institution(ctx, id)
			}
		}
		if errors.Is(err, store.ErrNotFound) {
			in, err = tx.DefaultInstitution(ctx)
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		st, err := s.decode(in)
		if err != nil {
			return err
		}
		b = st.Branding(in.ID)
		return nil
	})
	return b, err
}
