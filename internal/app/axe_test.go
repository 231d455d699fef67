package app_test

// An accessibility audit of every reset page a customer can meet, with an
// institution's brand colour and logo set: axe-core (the npm package
// pinned in scripts/axe, which scripts/test installs) runs in Debian's
// Chromium on each page and the test fails on any serious or critical
// violation. The page's CSP forbids every script, so axe goes in through
// the DevTools protocol (Runtime.evaluate runs outside the page's CSP);
// the pages themselves stay without JavaScript.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// axeLanguages are the Accept-Language values the audit runs under: the
// pages' language follows the browser's, so each is audited in each.
var axeLanguages = []struct{ name, acceptLanguage string }{
	{"en", "en"},
	{"de", "de-CH, fr;q=0.8"},
}

// axeSource reads axe.min.js: RESETD_AXE_JS (scripts/test sets it), else
// where scripts/test installs it. A machine without it skips loudly,
// unless RESETD_REQUIRE_ALL=1 (CI).
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("RESETD_AXE_JS")
	if path == "" {
		path = filepath.Join("..", "..", "scripts", "axe", "node_modules", "axe-core", "axe.min.js")
	}
	src, err := os.ReadFile(path)
	if err != nil {
		if os.Getenv("RESETD_REQUIRE_ALL") == "1" {
			t.Fatalf("RESETD_REQUIRE_ALL=1 but axe-core is missing at %s (npm ci --prefix scripts/axe): %v", path, err)
		}
		t.Skipf("SKIPPED: the accessibility test needs axe-core at %s (npm ci --prefix scripts/axe, or run scripts/test); set RESETD_REQUIRE_ALL=1 to fail instead", path)
	}
	return string(src)
}

type axeViolation struct {
	ID          string `json:"id"`
	Impact      string `json:"impact"`
	Help        string `json:"help"`
	HelpURL     string `json:"helpUrl"`
	Description string `json:"description"`
	Nodes       []struct {
		Target         []any  `json:"target"`
		HTML           string `json:"html"`
		FailureSummary string `json:"failureSummary"`
	} `json:"nodes"`
}

type axeResult struct {
	Violations []axeViolation `json:"violations"`
	Passes     int            `json:"passes"`
	Engine     string         `json:"engine"`
}

// audit injects axe into the page now shown and runs every rule it ships
// (WCAG 2.x A and AA, best practices). Serious and critical violations
// fail the test; the others are logged.
func audit(t *testing.T, ctx context.Context, axe, page string) {
	t.Helper()
	if ok := read(t, ctx, "inject axe-core into "+page, chromedp.Evaluate[bool](axe+";\ntypeof axe === 'object'")); !ok {
		t.Fatalf("%s: axe-core did not load", page)
	}
	raw := read(t, ctx, "run axe on "+page, chromedp.Evaluate[string](`axe.run(document, {resultTypes: ["violations"]}).then(r => JSON.stringify({
		violations: r.violations, passes: r.passes.length, engine: r.testEngine.name + " " + r.testEngine.version}))`, chromedp.EvalAwaitPromise))
	var res axeResult
	if err := json.Unmarshal([]byte(raw), &res); err != nil {
		t.Fatalf("%s: axe answered %.300s: %v", page, raw, err)
	}
	if res.Passes == 0 {
		t.Fatalf("%s: axe passed no rule at all (%s): it did not audit the page", page, res.Engine)
	}
	serious := 0
	for _, v := range res.Violations {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %s [%s] %s (%s)", page, v.ID, v.Impact, v.Help, v.HelpURL)
		for _, n := range v.Nodes {
			fmt.Fprintf(&b, "\n    %v %s\n      %s", n.Target, n.HTML, strings.ReplaceAll(n.FailureSummary, "\n", "\n      "))
		}
		if v.Impact == "serious" || v.Impact == "critical" {
			serious++
			t.Error(b.String())
		} else {
			t.Log(b.String())
		}
	}
	t.Logf("%s: %s, %d rules passed, %d violations (%d serious or critical)", page, res.Engine, res.Passes, len(res.Violations), serious)
}

func TestResetPagesAccessibility(t *testing.T) {
	t.Parallel()
	axe := axeSource(t)
	for _, lang := range axeLanguages {
		t.Run(lang.name, func(t *testing.T) {
			ctx := newBrowser(t)
			shots := t.TempDir()
			h, admin, link, _ := pageSetup(t)
			h.brandAcme(admin)
			m := h.mail.Messages()
			dispute := disputeToken.FindStringSubmatch(m[len(m)-1].Text)
			if dispute == nil {
				t.Fatalf("the reset email has no dispute link: %s", m[len(m)-1].Text)
			}
			browse(t, ctx, "Accept-Language "+lang.acceptLanguage, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
				_, err := cdp.Call(ctx, tg, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": lang.acceptLanguage}})
				return err
			}))

			browse(t, ctx, "the form", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("password")))
			if alt := read(t, ctx, "logo", chromedp.Evaluate[string](`(i => i && i.complete && i.naturalWidth > 0 ? i.alt : "")(document.querySelector("img.logo"))`)); alt != "Acme Bank" {
				t.Errorf("the logo did not load, or has the alt text %q", alt)
			}
			if bg := read(t, ctx, "brand colour", chromedp.Evaluate[string](`getComputedStyle(document.querySelector(".masthead")).backgroundColor + " " + getComputedStyle(document.querySelector("button")).backgroundColor`)); bg != "rgb(122, 31, 92) rgb(122, 31, 92)" {
				t.Errorf("the brand colour is not on the header and button: %q", bg)
			}
			if lang.name == "en" {
				pageScreenshot(t, ctx, shots, "branded")
			}
			audit(t, ctx, axe, "form")

			browse(t, ctx, "the form's errors", fillForm(goodPassword, goodPassword+"x"), chromedp.WaitVisible(chromedp.ID("confirm-error")))
			audit(t, ctx, axe, "form with an error")

			browse(t, ctx, "the success page", fillForm(goodPassword, goodPassword), chromedp.WaitVisible(chromedp.ID("success")))
			if lang.name == "en" {
				pageScreenshot(t, ctx, shots, "branded-success")
			}
			audit(t, ctx, axe, "success")

			browse(t, ctx, "the used link", chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("expired")))
			audit(t, ctx, axe, "expired")

			browse(t, ctx, "an error page", chromedp.Navigate(h.url+"/reset/code"), chromedp.WaitVisible(chromedp.ID("message")))
			audit(t, ctx, axe, "error")

			browse(t, ctx, "the code page", chromedp.Navigate(h.url+"/reset/code?institution=acme"), chromedp.WaitVisible(chromedp.ID("code")))
			audit(t, ctx, axe, "code")
			browse(t, ctx, "a wrong code",
				chromedp.SendKeys(chromedp.ID("username"), "jane.doe"),
				chromedp.SendKeys(chromedp.ID("code"), "000000"),
				chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
				chromedp.WaitVisible(chromedp.ID("code-error")))
			audit(t, ctx, axe, "code with an error")

			browse(t, ctx, "the dispute page", chromedp.Navigate(h.url+"/reset/dispute?token="+dispute[1]), chromedp.WaitVisible(chromedp.ID("dispute")))
			audit(t, ctx, axe, "dispute")
			browse(t, ctx, "the dispute confirmed", chromedp.Click(chromedp.ID("dispute")), chromedp.WaitVisible(chromedp.ID("disputed")))
			audit(t, ctx, axe, "disputed")
		})
	}
}
