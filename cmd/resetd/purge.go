package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/reset"
)

// days is a duration given as "90d" or as a Go duration ("2160h").
type days time.Duration

// UnmarshalText parses either form; a retention must be positive.
func (d *days) UnmarshalText(b []byte) error {
	s := string(b)
	var v time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		i, err := strconv.Atoi(n)
		if err != nil || i <= 0 || i > 100*365 {
			return fmt.Errorf("%q is not a number of days", s)
		}
		v = time.Duration(i) * 24 * time.Hour
	} else {
		var err error
		if v, err = time.ParseDuration(s); err != nil || v <= 0 {
			return fmt.Errorf("%q is neither a number of days (90d) nor a positive duration (2160h)", s)
		}
	}
	*d = days(v)
	return nil
}

// Retention is how long deliveries and audit records are kept (SPEC §12);
// serve's periodic purge and resetd purge both use it.
type Retention struct {
	Deliveries days `name:"retention-deliveries" env:"RESETD_RETENTION_DELIVERIES" default:"${default_retention_deliveries}" help:"Keep delivery rows this long (e.g. 90d)."`
	Audit      days `name:"retention-audit" env:"RESETD_RETENTION_AUDIT" default:"${default_retention_audit}" help:"Keep audit records this long (e.g. 400d)."`
}

func (r Retention) retention() reset.Retention {
	return reset.Retention{Deliveries: time.Duration(r.Deliveries), Audit: time.Duration(r.Audit)}
}

// PurgeCmd runs the purge now.
type PurgeCmd struct {
	Retention
	DryRun bool `name:"dry-run" help:"Count what would be deleted; delete nothing."`
}

// Run purges and prints the counts per kind.
func (c *PurgeCmd) Run(ctx context.Context, g *Globals) error {
	a, err := app.Open(ctx, app.Config{DB: g.DB, SecretKey: g.SecretKey, Command: true, Version: version, Logger: g.quietLogger(), Retention: c.retention()})
	if err != nil {
		return err
	}
	defer a.Close()
	n, err := a.Purge(ctx, c.DryRun)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(n)
	}
	verb := "deleted"
	if c.DryRun {
		verb = "would delete"
	}
	fmt.Fprintf(g.stdout, "%s: tokens %d, otps %d, approvals %d, rate counters %d, deliveries %d, audit records %d, bulk members %d, bulks %d\n",
		verb, n.Tokens, n.OTPs, n.Approvals, n.RateCounters, n.Deliveries, n.Audit, n.BulkMembers, n.Bulks)
	return nil
}
