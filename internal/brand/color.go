// Package brand checks what an institution may put on the reset page to
// wear its brand: a colour that white text stays readable on, and a logo
// (PNG or SVG) that can carry nothing but a picture. It knows no HTTP and
// no storage; the domain validates settings with it and the page serves
// what it accepted.
package brand

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// MinContrast is the least contrast ratio white text must have on the
// brand colour: WCAG 2.x level AA for normal text.
const MinContrast = 4.5

var hexColor = regexp.MustCompile(`^#[0-9A-Fa-f]{6}$`)

// ParseColor checks a "#RRGGBB" colour and the contrast of white text on
// it, and returns it in lower case.
func ParseColor(s string) (string, error) {
	if !hexColor.MatchString(s) {
		return "", fmt.Errorf("%q is not a colour of the form #RRGGBB", s)
	}
	s = strings.ToLower(s)
	if c := Contrast(s, "#ffffff"); c < MinContrast {
		return "", fmt.Errorf("white text on %s has a contrast of %.2f:1, below the %.1f:1 that WCAG asks for; choose a darker colour", s, math.Floor(c*100)/100, MinContrast)
	}
	return s, nil
}

// Contrast is the WCAG 2.x contrast ratio of two "#rrggbb" colours,
// (L1 + 0.05) / (L2 + 0.05) with L1 the lighter's relative luminance.
func Contrast(a, b string) float64 {
	la, lb := Luminance(a), Luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// Luminance is the relative luminance of a "#rrggbb" colour as WCAG 2.x
// defines it: each sRGB channel linearised, weighted 0.2126, 0.7152,
// 0.0722. A malformed colour counts as black.
func Luminance(hex string) float64 {
	if !hexColor.MatchString(hex) {
		return 0
	}
	lin := func(i int) float64 {
		v, _ := strconv.ParseUint(hex[i:i+2], 16, 8)
		c := float64(v) / 255
		if c <= 0.04045 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	return 0.2126*lin(1) + 0.7152*lin(3) + 0.0722*lin(5)
}

// Darker returns the colour mixed with black by frac (0…1): the hover
// shade of a button. It is darker, so white on it has more contrast.
func Darker(hex string, frac float64) string {
	if !hexColor.MatchString(hex) {
		return hex
	}
	out := "#"
	for i := 1; i < 7; i += 2 {
		v, _ := strconv.ParseUint(hex[i:i+2], 16, 8)
		out += fmt.Sprintf("%02x", int(math.Round(float64(v)*(1-frac))))
	}
	return out
}
