package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/resetd/resetd/internal/auth"
)

// Client management (SPEC §9). Every change is audited by internal/auth.

// ClientListCmd lists clients.
type ClientListCmd struct {
	Institution string `name:"institution" help:"Only clients of this institution ('*' for the all-institution ones)."`
}

// Run lists.
func (c *ClientListCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	cs, err := a.Auth.ListClients(ctx, c.Institution)
	if err != nil {
		return err
	}
	if g.JSON {
		return g.printJSON(map[string]any{"clients": cs})
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tINSTITUTION\tSTATE\tAUTH\tCREATED\tSCOPES")
	for _, ci := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ci.ID, ci.Name, ci.InstitutionID, ci.State, ci.AuthMethod, ci.CreatedAt.Format(time.RFC3339), strings.Join(ci.Scopes, " "))
	}
	return tw.Flush()
}

// ClientShowCmd shows one client.
type ClientShowCmd struct {
	ID string `arg:"" name:"id" help:"Client id."`
}

// Run shows.
func (c *ClientShowCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	ci, err := a.Auth.ShowClient(ctx, c.ID)
	if err != nil {
		return describeClient(err)
	}
	return printClient(g, ci)
}

func printClient(g *Globals, ci auth.ClientInfo) error {
	if g.JSON {
		return g.printJSON(ci)
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%s\nname:\t%s\ninstitution:\t%s\nstate:\t%s\nauth method:\t%s\ncreated:\t%s\nscopes:\t%s\n",
		ci.ID, ci.Name, ci.InstitutionID, ci.State, ci.AuthMethod, ci.CreatedAt.Format(time.RFC3339), strings.Join(ci.Scopes, " "))
	if !ci.OldSecretUntil.IsZero() {
		fmt.Fprintf(tw, "old secret works until:\t%s\n", ci.OldSecretUntil.Format(time.RFC3339))
	}
	return tw.Flush()
}

func describeClient(err error) error {
	if errors.Is(err, auth.ErrNoSuchClient) {
		return errors.New("no such client (resetd client list shows them)")
	}
	return err
}

// ClientDisableCmd disables a client.
type ClientDisableCmd struct {
	ID string `arg:"" name:"id" help:"Client id."`
}

// Run disables.
func (c *ClientDisableCmd) Run(ctx context.Context, g *Globals) error {
	return g.clientChange(ctx, c.ID, "disabled", func(a *auth.Service) error { return a.DisableClient(ctx, c.ID) })
}

// ClientEnableCmd enables a client.
type ClientEnableCmd struct {
	ID string `arg:"" name:"id" help:"Client id."`
}

// Run enables.
func (c *ClientEnableCmd) Run(ctx context.Context, g *Globals) error {
	return g.clientChange(ctx, c.ID, "enabled", func(a *auth.Service) error { return a.EnableClient(ctx, c.ID) })
}

// ClientDeleteCmd deletes a client.
type ClientDeleteCmd struct {
	ID string `arg:"" name:"id" help:"Client id."`
}

// Run deletes.
func (c *ClientDeleteCmd) Run(ctx context.Context, g *Globals) error {
	return g.clientChange(ctx, c.ID, "deleted", func(a *auth.Service) error { return a.DeleteClient(ctx, c.ID) })
}

func (g *Globals) clientChange(ctx context.Context, id, done string, fn func(*auth.Service) error) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := fn(a.Auth); err != nil {
		return describeClient(err)
	}
	if g.JSON {
		return g.printJSON(map[string]string{"client_id": id, "status": done})
	}
	fmt.Fprintf(g.stdout, "client %s %s; every replica refuses its tokens within 10 s\n", id, done)
	return nil
}

// ClientRotateSecretCmd gives a client a new secret.
type ClientRotateSecretCmd struct {
	ID      string        `arg:"" name:"id" help:"Client id."`
	KeepOld time.Duration `name:"keep-old" default:"0" help:"How long the old secret keeps working (at most 168h; 0: it stops now)."`
}

// Run rotates; the new secret is printed once.
func (c *ClientRotateSecretCmd) Run(ctx context.Context, g *Globals) error {
	if c.KeepOld < 0 || c.KeepOld > auth.MaxKeepOld {
		return fmt.Errorf("--keep-old must be between 0 and %s", auth.MaxKeepOld)
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	secret, ci, err := a.Auth.RotateSecret(ctx, c.ID, c.KeepOld)
	if err != nil {
		return describeClient(err)
	}
	out := map[string]string{"client_id": ci.ID, "client_secret": secret}
	if !ci.OldSecretUntil.IsZero() {
		out["old_secret_until"] = ci.OldSecretUntil.Format(time.RFC3339)
	}
	return g.printJSON(out)
}

// ClientSetScopesCmd replaces a client's scopes.
type ClientSetScopesCmd struct {
	ID     string   `arg:"" name:"id" help:"Client id."`
	Scopes []string `name:"scope" required:"" help:"Scope (repeatable)."`
}

// Run sets the scopes.
func (c *ClientSetScopesCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	ci, err := a.Auth.SetScopes(ctx, c.ID, c.Scopes)
	if err != nil {
		return describeClient(err)
	}
	return printClient(g, ci)
}
