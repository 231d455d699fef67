package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/resetd/resetd/internal/brand"
	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/reset"
)

// An institution's brand on the page: its colour through a stylesheet
// made from the colour alone (the page's CSP allows no inline style), and
// its logo served by resetd itself, so the page loads nothing from
// elsewhere and its CSP stays 'self'.

const (
	logoPath     = "/reset/logo/"
	brandCSSPath = "/reset/assets/brand.css"
)

// brandService is what the branded parts need from the domain.
type brandService interface {
	Logo(ctx context.Context, institutionID string) (brand.Logo, error)
	GoneBranding(ctx context.Context, token string) (reset.Branding, error)
}

// goneBranding is the brand of a dead link's page; a failure to read it
// leaves the page unbranded (it must still tell the customer what to do).
func (h *handler) goneBranding(r *http.Request, tok string) reset.Branding {
	b, err := h.svc.GoneBranding(r.Context(), tok)
	if err != nil {
		h.logger.ErrorContext(r.Context(), "reading the brand of a dead link's page", "err", err)
		return reset.Branding{}
	}
	return b
}

// brandHrefs are the URLs of a brand's stylesheet and logo ("" for none).
func (p *pages) brandHrefs(b reset.Branding) (css, logo string) {
	if b.BrandColor != "" {
		css = p.base + brandCSSPath + "?" + url.Values{"c": {strings.TrimPrefix(b.BrandColor, "#")}}.Encode()
	}
	if b.LogoVersion != "" && b.InstitutionID != "" {
		logo = p.base + logoPath + url.PathEscape(b.InstitutionID) + "?" + url.Values{"v": {b.LogoVersion}}.Encode()
	}
	return css, logo
}

// serveBrandCSS is GET /reset/assets/brand.css?c=RRGGBB: the header and
// the main button in that colour. It depends on the colour only, so it is
// cached for good; a colour the settings would refuse is not served.
func (p *pages) serveBrandCSS(w http.ResponseWriter, r *http.Request) {
	c, err := brand.ParseColor("#" + r.URL.Query().Get("c"))
	if err != nil || len(r.URL.Query()["c"]) != 1 {
		notFound(w, r, "not a brand colour")
		return
	}
	css := ".masthead{background:" + c + "}\n" +
		".button:not(.button-danger){background:" + c + "}\n" +
		".button:not(.button-danger):hover{background:" + brand.Darker(c, 0.15) + "}\n"
	h := w.Header()
	h.Set("Content-Type", "text/css; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Length", strconv.Itoa(len(css)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte(css))
	}
}

// serveLogo is GET /reset/logo/{institution}: the institution's own logo,
// as the kind it was checked as, under a CSP of its own that lets an SVG
// run nothing and load nothing (the page shows it as an <img>, where
// scripts never run anyway). Its ETag is the logo's version, which the
// page's URL carries: that URL may be cached for good.
func (h *handler) serveLogo(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("institutionId")
	logo, err := h.svc.Logo(r.Context(), id)
	if err != nil {
		var inv *reset.InvalidError
		if !errors.Is(err, reset.ErrNotFound) && !errors.As(err, &inv) {
			h.logger.ErrorContext(r.Context(), "reading a logo", "err", err)
			problem(w, r, http.StatusInternalServerError, "internal", "internal error; quote the transaction id to support")
			return
		}
		notFound(w, r, "no such logo")
		return
	}
	version := brand.Version(logo.DataURL())
	etag := `"` + version + `"`
	hd := w.Header()
	hd.Set("Content-Type", logo.ContentType)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("ETag", etag)
	if r.URL.Query().Get("v") == version {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "public, max-age=300")
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatch(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(logo.Data)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(logo.Data)
	}
}

// problem answers an asset's error as the API does (RFC 9457).
func problem(w http.ResponseWriter, r *http.Request, status int, typ, detail string) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type          string `json:"type"`
		Title         string `json:"title"`
		Status        int    `json:"status"`
		Detail        string `json:"detail"`
		TransactionID string `json:"transactionId"`
	}{"https://resetd.dev/problems/" + typ, http.StatusText(status), status, detail, request.TransactionID(r.Context())})
}

func notFound(w http.ResponseWriter, r *http.Request, detail string) {
	problem(w, r, http.StatusNotFound, "not-found", detail)
}

// etagMatch reports whether an If-None-Match list names etag (weak
// comparison, RFC 9110 §13.1.2).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}
