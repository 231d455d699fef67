package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
)

// KeysCmd groups the secret-key and signing-key commands (SPEC §9).
type KeysCmd struct {
	Status KeysStatusCmd `cmd:"" help:"For each key of RESETD_SECRET_KEY, how many records still depend on it."`
	Rewrap KeysRewrapCmd `cmd:"" help:"Re-seal under the current (first) secret key what can be re-sealed."`
	List   KeysListCmd   `cmd:"" help:"List the JWT signing keys."`
	Rotate KeysRotateCmd `cmd:"" help:"Make a new signing key; older ones keep verifying."`
	Retire KeysRetireCmd `cmd:"" help:"Retire a signing key: its tokens are refused by every replica within 10 s."`
}

// KeysStatusCmd prints what depends on each key of the ring.
type KeysStatusCmd struct{}

var recordKinds = []string{app.RecordSigningKeys, app.RecordQueuedMessages, app.RecordOTPs, app.RecordFacts, app.RecordWebhookSecrets, app.RecordTombstones}

// Run prints the status.
func (c *KeysStatusCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	st, err := a.KeyStatus(ctx)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(st)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprint(tw, "KEY\tROLE")
	for _, k := range recordKinds {
		fmt.Fprintf(tw, "\t%s", k)
	}
	fmt.Fprintln(tw)
	row := func(name, role string, counts map[string]int) {
		fmt.Fprintf(tw, "%s\t%s", name, role)
		for _, k := range recordKinds {
			fmt.Fprintf(tw, "\t%d", counts[k])
		}
		fmt.Fprintln(tw)
	}
	for _, k := range st.Keys {
		role := "old"
		if k.Current {
			role = "current"
		}
		row(string(k.KeyID), role, k.Records)
	}
	other := 0
	for _, n := range st.Other {
		other += n
	}
	if other > 0 {
		row("(none)", "other", st.Other)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, k := range st.Keys[1:] {
		left := 0
		for _, n := range k.Records {
			left += n
		}
		if left == 0 {
			fmt.Fprintf(g.stdout, "nothing depends on %s any more: it can be dropped from RESETD_SECRET_KEY\n", k.KeyID)
		}
	}
	return nil
}

// KeysRewrapCmd re-seals under the current key.
type KeysRewrapCmd struct{}

// Run rewraps.
func (c *KeysRewrapCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	n, err := a.Rewrap(ctx)
	if err != nil {
		return err
	}
	if err := a.Reset.AuditOperator(ctx, "keys.rewrap", ""); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(map[string]any{"rewrapped": n})
	}
	kinds := make([]string, 0, len(n))
	for k := range n {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(g.stdout, "%s: %d re-sealed\n", k, n[k])
	}
	fmt.Fprintln(g.stdout, "OTPs expire on their own and facts are re-keyed when they next verify; see resetd keys status")
	return nil
}

// KeysListCmd lists signing keys.
type KeysListCmd struct{}

// Run lists.
func (c *KeysListCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	ks, err := a.Auth.Keys(ctx)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(map[string]any{"keys": ks})
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tALG\tCREATED\tSTATE\tSEALED BY")
	for _, k := range ks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.KID, k.Alg, k.CreatedAt.Format(time.RFC3339), k.State, k.SealedBy)
	}
	return tw.Flush()
}

// KeysRotateCmd makes a new signing key.
type KeysRotateCmd struct{}

// Run rotates.
func (c *KeysRotateCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Auth.Rotate(ctx); err != nil {
		return err
	}
	if err := a.Reset.AuditOperator(ctx, "keys.rotate", ""); err != nil {
		return err
	}
	ks, err := a.Auth.Keys(ctx)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(map[string]string{"kid": ks[0].KID, "state": ks[0].State})
	}
	fmt.Fprintf(g.stdout, "signing key %s made; every replica signs with it within 10 s, older keys keep verifying\n", ks[0].KID)
	return nil
}

// KeysRetireCmd retires a signing key.
type KeysRetireCmd struct {
	KID string `arg:"" name:"kid" help:"Key id (resetd keys list)."`
}

// Run retires; retiring the active key is exit 1.
func (c *KeysRetireCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.Auth.Retire(ctx, c.KID); err != nil {
		if errors.Is(err, auth.ErrRetireActive) || errors.Is(err, auth.ErrNoSuchKey) {
			return errors.New(err.Error()[len("auth: "):])
		}
		return err
	}
	if err := a.Reset.AuditOperator(ctx, "keys.retire", ""); err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(map[string]string{"kid": c.KID, "state": auth.KeyRetired})
	}
	fmt.Fprintf(g.stdout, "signing key %s retired; every replica refuses its tokens within 10 s\n", c.KID)
	return nil
}
