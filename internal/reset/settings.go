package reset

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/i18n"
)

// Settings are an institution's password-reset settings (seed 000's
// `expiration` plus resetd's own). Stored as JSON so a new setting needs
// no migration.
type Settings struct {
	Expiration        int      `json:"expiration"`
	OTPLength         int      `json:"otpLength"`
	OTPExpiration     int      `json:"otpExpiration"`
	OTPMaxAttempts    int      `json:"otpMaxAttempts"`
	LinkBases         []string `json:"linkBases"`
	Senders           []string `json:"senders"`
	PasswordMinLength int      `json:"passwordMinLength"`
	PasswordHistory   int      `json:"passwordHistory"`
	// PasswordMinStrength is the least zxcvbn score (0…4) a new password
	// needs (SPEC §10); 0 turns the estimate off.
	PasswordMinStrength   int      `json:"passwordMinStrength"`
	WebhookURL            string   `json:"webhookUrl"`
	DisplayName           string   `json:"displayName"`
	RevealRecipient       bool     `json:"revealRecipient"`
	SMSCountries          []string `json:"smsCountries"`
	SendsPerUserHour      int      `json:"sendsPerUserHour"`
	PublicPerIPMinute     int      `json:"publicPerIPMinute"`
	PublicPerUsernameHour int      `json:"publicPerUsernameHour"`
	// Templates override message templates per institution, keyed like
	// "reset_link.email.subject" (see delivery.Templates.WithOverrides).
	Templates map[string]string `json:"templates"`

	// SPEC §7 defences.
	ContactChangeCooldown int      `json:"contactChangeCooldown"`
	DisputeLock           int      `json:"disputeLock"`
	RequireFacts          []string `json:"requireFacts"`
	AdminResetApproval    bool     `json:"adminResetApproval"`
	// SelfServiceGet lets SendResetPassword answer GET as seed 002 does;
	// false: POST only (GET answers 405).
	SelfServiceGet bool `json:"selfServiceGet"`

	// Branding of the reset page (branding.go): "" is none.
	BrandColor string `json:"brandColor"`
	// Logo is stored as a data: URL (brand.Logo.DataURL).
	Logo       string `json:"logo"`
	SignInURL  string `json:"signInUrl"`
	SupportURL string `json:"supportUrl"`
	// DefaultLocale is the language of a user without a locale, or with
	// one not offered; Locales are the languages offered (shipped codes).
	DefaultLocale string   `json:"defaultLocale"`
	Locales       []string `json:"locales"`
	// BulkRatePerSecond is how many messages a bulk forced reset of the
	// institution sends per second (bulk.go).
	BulkRatePerSecond int `json:"bulkRatePerSecond"`
}

// SettingsPatch is a partial update: nil fields keep their value.
type SettingsPatch struct {
	Expiration            *int      `json:"expiration"`
	OTPLength             *int      `json:"otpLength"`
	OTPExpiration         *int      `json:"otpExpiration"`
	OTPMaxAttempts        *int      `json:"otpMaxAttempts"`
	LinkBases             *[]string `json:"linkBases"`
	Senders               *[]string `json:"senders"`
	PasswordMinLength     *int      `json:"passwordMinLength"`
	PasswordHistory       *int      `json:"passwordHistory"`
	PasswordMinStrength   *int      `json:"passwordMinStrength"`
	WebhookURL            *string   `json:"webhookUrl"`
	DisplayName           *string   `json:"displayName"`
	RevealRecipient       *bool     `json:"revealRecipient"`
	SMSCountries          *[]string `json:"smsCountries"`
	SendsPerUserHour      *int      `json:"sendsPerUserHour"`
	PublicPerIPMinute     *int      `json:"publicPerIPMinute"`
	PublicPerUsernameHour *int      `json:"publicPerUsernameHour"`
	// Templates, when given, replaces the whole override map ({} clears it).
	Templates *map[string]string `json:"templates"`

	ContactChangeCooldown *int      `json:"contactChangeCooldown"`
	DisputeLock           *int      `json:"disputeLock"`
	RequireFacts          *[]string `json:"requireFacts"`
	AdminResetApproval    *bool     `json:"adminResetApproval"`
	SelfServiceGet        *bool     `json:"selfServiceGet"`

	// Branding; "" removes a value.
	BrandColor        *string   `json:"brandColor"`
	Logo              *string   `json:"logo"`
	SignInURL         *string   `json:"signInUrl"`
	SupportURL        *string   `json:"supportUrl"`
	DefaultLocale     *string   `json:"defaultLocale"`
	Locales           *[]string `json:"locales"`
	BulkRatePerSecond *int      `json:"bulkRatePerSecond"`
}

// maxDisplayName bounds displayName (bytes).
const maxDisplayName = 100

// MaxPasswordHistory is the most history a setting may ask for; the store
// keeps no more than this.
const MaxPasswordHistory = 24

// DefaultSettings returns the defaults of SPEC §3 for a server whose reset
// page lives at publicURL/reset.
func DefaultSettings(publicURL string) Settings {
	return Settings{
		Expiration:            3600,
		OTPLength:             6,
		OTPExpiration:         600,
		OTPMaxAttempts:        5,
		LinkBases:             []string{config.BaseURL(publicURL) + "/reset"},
		Senders:               []string{},
		PasswordMinLength:     12,
		PasswordHistory:       4,
		PasswordMinStrength:   3,
		SMSCountries:          []string{},
		Templates:             map[string]string{},
		SendsPerUserHour:      5,
		PublicPerIPMinute:     20,
		PublicPerUsernameHour: 10,
		ContactChangeCooldown: 86400,
		DisputeLock:           86400,
		RequireFacts:          []string{},
		SelfServiceGet:        true,
		DefaultLocale:         i18n.Default,
		Locales:               i18n.Shipped(),
		BulkRatePerSecond:     50,
	}
}

// decodeSettings reads stored settings over the defaults, so settings
// written before a field existed get its default.
func decodeSettings(raw []byte, publicURL string) (Settings, error) {
	s := DefaultSettings(publicURL)
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &s); err != nil {
			return s, fmt.Errorf("reset: stored settings: %w", err)
		}
	}
	if len(s.LinkBases) == 0 {
		s.LinkBases = DefaultSettings(publicURL).LinkBases
	}
	if s.Senders == nil {
		s.Senders = []string{}
	}
	if s.SMSCountries == nil {
		s.SMSCountries = []string{}
	}
	if s.Templates == nil {
		s.Templates = map[string]string{}
	}
	if s.RequireFacts == nil {
		s.RequireFacts = []string{}
	}
	if len(s.Locales) == 0 {
		s.Locales = i18n.Shipped()
	}
	if s.DefaultLocale == "" {
		s.DefaultLocale = i18n.Default
	}
	return s, nil
}

// Apply returns s with the patch's fields set.
func (p SettingsPatch) Apply(s Settings) Settings {
	setInt := func(dst *int, v *int) {
		if v != nil {
			*dst = *v
		}
	}
	setInt(&s.Expiration, p.Expiration)
	setInt(&s.OTPLength, p.OTPLength)
	setInt(&s.OTPExpiration, p.OTPExpiration)
	setInt(&s.OTPMaxAttempts, p.OTPMaxAttempts)
	setInt(&s.PasswordMinLength, p.PasswordMinLength)
	setInt(&s.PasswordHistory, p.PasswordHistory)
	setInt(&s.PasswordMinStrength, p.PasswordMinStrength)
	setInt(&s.SendsPerUserHour, p.SendsPerUserHour)
	setInt(&s.PublicPerIPMinute, p.PublicPerIPMinute)
	setInt(&s.PublicPerUsernameHour, p.PublicPerUsernameHour)
	setInt(&s.ContactChangeCooldown, p.ContactChangeCooldown)
	setInt(&s.DisputeLock, p.DisputeLock)
	setInt(&s.BulkRatePerSecond, p.BulkRatePerSecond)
	if p.RequireFacts != nil {
		s.RequireFacts = slices.Clone(*p.RequireFacts)
	}
	if p.AdminResetApproval != nil {
		s.AdminResetApproval = *p.AdminResetApproval
	}
	if p.SelfServiceGet != nil {
		s.SelfServiceGet = *p.SelfServiceGet
	}
	if p.DefaultLocale != nil {
		s.DefaultLocale = *p.DefaultLocale
	}
	if p.Locales != nil {
		s.Locales = slices.Clone(*p.Locales)
	}
	if p.LinkBases != nil {
		s.LinkBases = slices.Clone(*p.LinkBases)
	}
	if p.Senders != nil {
		s.Senders = slices.Clone(*p.Senders)
	}
	if p.SMSCountries != nil {
		s.SMSCountries = slices.Clone(*p.SMSCountries)
		for i, c := range s.SMSCountries {
			s.SMSCountries[i] = strings.ToUpper(c)
		}
	}
	if p.Templates != nil {
		s.Templates = maps.Clone(*p.Templates)
	}
	if p.WebhookURL != nil {
		s.WebhookURL = *p.WebhookURL
	}
	if p.DisplayName != nil {
		s.DisplayName = *p.DisplayName
	}
	if p.RevealRecipient != nil {
		s.RevealRecipient = *p.RevealRecipient
	}
	p.applyBranding(&s)
	return s
}

var countryCode = regexp.MustCompile(`^[A-Z]{2}$`)

// Validate checks every bound; the error names the first field out of range.
func (s Settings) Validate() error {
	ranges := []struct {
		name     string
		v        int
		min, max int
	}{
		{"expiration", s.Expiration, 300, 604800},
		{"otpLength", s.OTPLength, 6, 10},
		{"otpExpiration", s.OTPExpiration, 60, 3600},
		{"otpMaxAttempts", s.OTPMaxAttempts, 1, 10},
		{"passwordMinLength", s.PasswordMinLength, 8, 64},
		{"passwordHistory", s.PasswordHistory, 0, MaxPasswordHistory},
		{"passwordMinStrength", s.PasswordMinStrength, 0, 4},
		{"sendsPerUserHour", s.SendsPerUserHour, 0, 1000},
		{"publicPerIPMinute", s.PublicPerIPMinute, 0, 100000},
		{"publicPerUsernameHour", s.PublicPerUsernameHour, 0, 1000},
		{"contactChangeCooldown", s.ContactChangeCooldown, 0, 2592000},
		{"disputeLock", s.DisputeLock, 0, 2592000},
		{"bulkRatePerSecond", s.BulkRatePerSecond, MinBulkRate, MaxBulkRate},
	}
	for _, r := range ranges {
		if r.v < r.min || r.v > r.max {
			return invalid(r.name, fmt.Sprintf("%s must be between %d and %d", r.name, r.min, r.max))
		}
	}
	if len(s.LinkBases) == 0 || len(s.LinkBases) > 20 {
		return invalid("linkBases", "linkBases must hold between 1 and 20 URLs")
	}
	for _, b := range s.LinkBases {
		if err := ValidateLinkBase(b); err != nil {
			return invalid("linkBases", err.Error())
		}
	}
	if len(s.Senders) > 20 {
		return invalid("senders", "senders may hold at most 20 addresses")
	}
	for _, a := range s.Senders {
		if !validEmail(a) {
			return invalid("senders", fmt.Sprintf("%q is not an email address", a))
		}
	}
	if s.WebhookURL != "" {
		if err := validateWebhookURL(s.WebhookURL); err != nil {
			return err
		}
	}
	if len(s.DisplayName) > maxDisplayName || !printable(s.DisplayName) {
		return invalid("displayName", "displayName must be at most 100 printable characters")
	}
	for _, f := range s.RequireFacts {
		if !slices.Contains(FactNames, f) {
			return invalid("requireFacts", fmt.Sprintf("%q is not a fact resetd knows (%s)", f, strings.Join(FactNames, ", ")))
		}
	}
	for _, c := range s.SMSCountries {
		if !countryCode.MatchString(c) {
			return invalid("smsCountries", fmt.Sprintf("%q is not an ISO 3166 alpha-2 country code", c))
		}
	}
	if err := s.validateBranding(); err != nil {
		return err
	}
	return s.validateLocales()
}

// validateLocales refuses (400) a language resetd has no catalog for, a
// list that repeats one, and a default that is not offered.
func (s Settings) validateLocales() error {
	shipped := strings.Join(i18n.Shipped(), ", ")
	if len(s.Locales) == 0 {
		return unprocessable("locales", "locales must offer at least one language ("+shipped+")")
	}
	for i, l := range s.Locales {
		if !i18n.IsShipped(l) {
			return unprocessable("locales", fmt.Sprintf("%q is not a language resetd has messages for (%s)", l, shipped))
		}
		if slices.Contains(s.Locales[:i], l) {
			return unprocessable("locales", fmt.Sprintf("%q is listed twice", l))
		}
	}
	if !slices.Contains(s.Locales, s.DefaultLocale) {
		return unprocessable("defaultLocale", fmt.Sprintf("defaultLocale %q must be one of locales (%s)", s.DefaultLocale, strings.Join(s.Locales, ", ")))
	}
	return nil
}

// messageLang is the language of a message to a user whose locale is
// locale: the offered language it matches (BCP 47: "de-AT" is served by
// "de"), else the institution's default.
func (s Settings) messageLang(locale string) string {
	return i18n.Match(s.Locales, s.DefaultLocale, locale)
}

// Languages are the institution's languages for a page of no user in
// particular (the code page).
func (s Settings) Languages() Languages { return languagesOf(s, "") }

// ValidateLinkBase accepts an absolute https URL (http only on a loopback
// host) without query or fragment, since the link is BASE?token=….
func ValidateLinkBase(raw string) error {
	if err := validateServiceURL(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	if u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, "?#") {
		return fmt.Errorf("link base %q must not have a query or fragment", raw)
	}
	return nil
}

func validateServiceURL(raw string) error {
	if len(raw) > 2000 || !printable(raw) {
		return fmt.Errorf("%q is not a valid URL", raw)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("%q must use https (http only for loopback hosts)", raw)
		}
	default:
		return fmt.Errorf("%q must use https", raw)
	}
	return nil
}

// validateWebhookURL checks a webhookUrl's form; its addresses are the
// webhook policy's (URLChecker), which also decides when http may do.
func validateWebhookURL(raw string) error {
	if len(raw) > 2000 || !printable(raw) {
		return invalid("webhookUrl", fmt.Sprintf("webhookUrl: %q is not a valid URL", raw))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" {
		return invalid("webhookUrl", fmt.Sprintf("webhookUrl: %q is not an absolute URL without user info", raw))
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return invalid("webhookUrl", fmt.Sprintf("webhookUrl: %q must use https", raw))
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func validEmail(s string) bool {
	if len(s) > 254 || !printable(s) {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Address == s && a.Name == "" && strings.Contains(s, "@")
}

// printable rejects control characters (CR, LF, NUL, …) and invalid UTF-8,
// which have no place in names, addresses or URLs.
func printable(s string) bool {
	for _, r := range s {
		if r == 0xFFFD || r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0) {
			return false
		}
	}
	return true
}
