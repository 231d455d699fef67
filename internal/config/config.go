// Package config states once what resetd does when the operator sets
// nothing: the command line shows these defaults in --help, app.Open
// fills an unset Config field from them, and every layer that appends a
// path to a base URL normalises it with BaseURL. It holds constants and
// pure functions only: no globals.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Defaults of the settings SPEC §1 lets an operator leave unset.
const (
	// Addr is where resetd listens.
	Addr = "127.0.0.1:8080"
	// DB is the database: a SQLite file in the working directory.
	DB = "sqlite:resetd.db"
	// QueueWorkers bounds concurrent deliveries.
	QueueWorkers = 100
	// RetentionDeliveries is how long delivery rows are kept (SPEC §12).
	RetentionDeliveries = 90 * 24 * time.Hour
	// RetentionAudit is how long audit records are kept (SPEC §12).
	RetentionAudit = 400 * 24 * time.Hour
)

// PublicURL is the base of the links resetd serves: the operator's
// setting, or http://addr when there is none, normalised by BaseURL.
func PublicURL(set, addr string) string {
	if set == "" {
		set = "http://" + addr
	}
	return BaseURL(set)
}

// BaseURL is s as resetd keeps a base it appends paths to (the public
// URL, an institution's link bases, the page's path): without trailing
// slashes, so base+"/reset" has exactly one and two spellings of the same
// base compare equal.
func BaseURL(s string) string { return strings.TrimRight(s, "/") }

// CheckBaseURL refuses what cannot be the base of a link a customer
// clicks: anything but an absolute http(s) URL with a host and no query
// or fragment. "reset.bank.example" without a scheme would otherwise put
// "reset.bank.example/reset?…" in every email.
func CheckBaseURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute http:// or https:// URL such as https://reset.bank.example (got %q)", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must have no user, query or fragment: it is the base links are built on")
	}
	return nil
}
