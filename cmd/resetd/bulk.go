package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/reset"
)

// ResetCmd groups reset commands.
type ResetCmd struct {
	Bulk BulkCmd `cmd:"" help:"Bulk forced reset: send every listed user (or every user) of an institution a reset link, at the institution's bulkRatePerSecond."`
}

// BulkCmd starts a bulk (the default) or reads or cancels one.
type BulkCmd struct {
	Start  BulkStartCmd  `cmd:"" default:"withargs" help:"Start a bulk forced reset and follow its progress (the default: resetd reset bulk --institution ID --all --method email)."`
	Status BulkStatusCmd `cmd:"" help:"Show a bulk's progress (--follow: until it ends)."`
	Cancel BulkCancelCmd `cmd:"" help:"Cancel a bulk: what is not sent yet is not sent."`
}

// BulkStartCmd is `resetd reset bulk --institution ID (--users FILE | --all) --method email|sms`.
type BulkStartCmd struct {
	Institution    string `name:"institution" required:"" help:"Institution id."`
	Users          string `name:"users" placeholder:"FILE" xor:"who" required:"" help:"File of user ids, one a line, or a CSV whose first column is the user id (a header line userId is skipped); '-' for standard input. At most 100000."`
	All            bool   `name:"all" xor:"who" required:"" help:"Every user of the institution."`
	Method         string `name:"method" required:"" enum:"email,sms" help:"email or sms."`
	Rate           string `name:"rate" placeholder:"N/s" help:"Messages per second for this bulk (1…10000), instead of the institution's bulkRatePerSecond."`
	IdempotencyKey string `name:"idempotency-key" help:"Run the command again with the same key to follow the bulk it started instead of starting another."`
	Detach         bool   `name:"detach" help:"Print the bulk id and exit; do not follow its progress."`
}

// Run starts the bulk and follows it until it ends or Ctrl-C (which
// leaves it running). The running server (resetd serve) sends it.
func (c *BulkStartCmd) Run(ctx context.Context, g *Globals) error {
	rate, err := parseRate(c.Rate)
	if err != nil {
		return err
	}
	req := reset.BulkRequest{Method: c.Method, All: c.All, Rate: rate, IdempotencyKey: c.IdempotencyKey, Operator: true}
	if c.Users != "" {
		if req.UserIDs, err = readUserIDs(c.Users, g.stdin); err != nil {
			return err
		}
		req.ListGiven = true
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	id, created, err := a.Reset.StartBulk(ctx, reset.Actor{ClientID: "cli"}, c.Institution, req)
	if err != nil {
		return describeBulk(err)
	}
	word := "started"
	if !created {
		word = "already started with this idempotency key"
	}
	fmt.Fprintf(g.stderr, "bulk %s %s; the running server (resetd serve) sends it. Follow it with: resetd reset bulk status --follow --institution %s %s\n", id, word, c.Institution, id)
	if c.Detach {
		if g.JSON {
			return g.printJSON(map[string]string{"bulkId": id})
		}
		fmt.Fprintln(g.stdout, id)
		return nil
	}
	return follow(ctx, g, a.Reset, c.Institution, id)
}

// BulkStatusCmd prints a bulk's progress.
type BulkStatusCmd struct {
	Institution string `name:"institution" required:"" help:"Institution id."`
	ID          string `arg:"" name:"bulkid" help:"The bulk's id."`
	Follow      bool   `name:"follow" short:"f" help:"Follow the progress until the bulk ends (Ctrl-C stops following, not the bulk)."`
}

// Run prints the progress.
func (c *BulkStatusCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if c.Follow {
		return follow(ctx, g, a.Reset, c.Institution, c.ID)
	}
	st, err := a.Reset.BulkStatus(ctx, c.Institution, c.ID)
	if err != nil {
		return describeBulk(err)
	}
	if g.JSON {
		return g.printJSON(st)
	}
	fmt.Fprintln(g.stdout, bulkLine(st))
	return nil
}

// BulkCancelCmd cancels a bulk.
type BulkCancelCmd struct {
	Institution string `name:"institution" required:"" help:"Institution id."`
	ID          string `arg:"" name:"bulkid" help:"The bulk's id."`
}

// Run cancels.
func (c *BulkCancelCmd) Run(ctx context.Context, g *Globals) error {
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	st, err := a.Reset.CancelBulk(ctx, reset.Actor{ClientID: "cli"}, c.Institution, c.ID)
	if err != nil {
		return describeBulk(err)
	}
	if g.JSON {
		return g.printJSON(st)
	}
	fmt.Fprintln(g.stdout, bulkLine(st))
	return nil
}

// parseRate reads --rate: "200" or "200/s".
func parseRate(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(s), "/s"))
	if err != nil || n < reset.MinBulkRate || n > reset.MaxBulkRate {
		return 0, fmt.Errorf("--rate must be a number of messages per second from %d to %d, e.g. --rate 200/s", reset.MinBulkRate, reset.MaxBulkRate)
	}
	return n, nil
}

// readUserIDs reads a file of user ids: one a line, or CSV with the id
// first; blank lines and a first line naming the column are skipped.
func readUserIDs(path string, stdin io.Reader) ([]string, error) {
	src := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		src = f
	}
	r := csv.NewReader(bufio.NewReader(src))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	var ids []string
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		id := strings.TrimSpace(strings.TrimPrefix(rec[0], "\ufeff"))
		if id == "" || (line == 1 && (strings.EqualFold(id, "userId") || strings.EqualFold(id, "id"))) {
			continue
		}
		if !reset.ValidID(id) {
			return nil, fmt.Errorf("%s line %d: not a valid user id", path, line)
		}
		if len(ids) == reset.MaxBulkUsers {
			return nil, fmt.Errorf("%s: more than %d user ids; use --all, or split the file into bulks run one after another", path, reset.MaxBulkUsers)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%s holds no user id", path)
	}
	return ids, nil
}

// follow shows the bulk's progress until it ends: a bar redrawn in place
// on a terminal, a line every few seconds anywhere else. Ctrl-C stops
// following and leaves the bulk running.
func follow(ctx context.Context, g *Globals, svc *reset.Service, institutionID, id string) error {
	terminal := isTerminal(g.stderr)
	every := 5 * time.Second
	if terminal {
		every = time.Second
	}
	// The status reads outlive Ctrl-C's context by a moment, so the last
	// line can be printed.
	read := context.WithoutCancel(ctx)
	var last time.Time
	for {
		st, err := svc.BulkStatus(read, institutionID, id)
		if err != nil {
			return describeBulk(err)
		}
		if terminal {
			fmt.Fprintf(g.stderr, "\r\033[K%s", bulkBar(st))
		} else if time.Since(last) >= every || st.Finished() {
			fmt.Fprintln(g.stderr, "bulk:", bulkLine(st))
			last = time.Now()
		}
		if st.Finished() {
			if terminal {
				fmt.Fprintln(g.stderr)
			}
			if g.JSON {
				return g.printJSON(st)
			}
			fmt.Fprintln(g.stdout, bulkLine(st))
			return nil
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			if terminal {
				fmt.Fprintln(g.stderr)
			}
			fmt.Fprintf(g.stderr, "stopped following; bulk %s keeps running (resetd reset bulk status --follow --institution %s %s; cancel it with resetd reset bulk cancel --institution %s %s)\n",
				id, institutionID, id, institutionID, id)
			fmt.Fprintln(g.stdout, id)
			return nil
		case <-t.C:
		}
	}
}

// bulkLine is one line of a bulk's progress.
func bulkLine(st reset.BulkStatus) string {
	k := st.Skipped
	total := strconv.Itoa(st.Total)
	if !st.Walked {
		total += "+"
	}
	return fmt.Sprintf("%s %s: %s members, %d sent, %d failed, %d queued, %d cancelled, skipped %d (no contact %d, disabled %d, locked %d, cooldown %d, not found %d, SMS refused %d, rate limited %d), %d/s",
		st.ID, st.State, total, st.Sent, st.Failed, st.Queued, st.Cancelled, k.Total(), k.NoContact, k.Disabled, k.Locked, k.Cooldown, k.NotFound, k.SMSRefused, k.RateLimited, st.RatePerSecond)
}

// bulkBar is the terminal's progress bar: decided members of the total.
func bulkBar(st reset.BulkStatus) string {
	const width = 30
	done := st.Total - st.Queued
	frac := 0.0
	if st.Total > 0 {
		frac = float64(done) / float64(st.Total)
	}
	n := int(frac * width)
	bar := strings.Repeat("#", n) + strings.Repeat("-", width-n)
	eta := ""
	if st.Queued > 0 && st.RatePerSecond > 0 && !st.Finished() {
		eta = ", ETA " + (time.Duration(st.Queued/st.RatePerSecond) * time.Second).String()
	}
	total := strconv.Itoa(st.Total)
	if !st.Walked {
		total += "+"
	}
	return fmt.Sprintf("[%s] %3.0f%% %d/%s sent %d failed %d skipped %d at %d/s%s", bar, 100*frac, done, total, st.Sent, st.Failed, st.Skipped.Total(), st.RatePerSecond, eta)
}

// describeBulk words a refused bulk command for the operator.
func describeBulk(err error) error {
	var running *reset.BulkRunningError
	switch {
	case errors.As(err, &running):
		return fmt.Errorf("bulk %s of this institution is still running: follow it with resetd reset bulk status --follow, or cancel it with resetd reset bulk cancel", running.ID)
	case errors.Is(err, reset.ErrTooManyUsers):
		return fmt.Errorf("at most %d user ids per bulk; use --all", reset.MaxBulkUsers)
	case errors.Is(err, reset.ErrIdempotencyMismatch):
		return errors.New("this idempotency key started a bulk with other users or another method; use a new key")
	case errors.Is(err, reset.ErrChannelUnavailable):
		return errors.New("SMS is unavailable: the server has no SMS carrier (--sms)")
	}
	return describe(err)
}
