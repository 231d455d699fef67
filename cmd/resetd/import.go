package main

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/reset"
)

// UserImportCmd streams a CSV of users into the directory.
type UserImportCmd struct {
	Institution string `name:"institution" required:"" help:"Institution id."`
	File        string `arg:"" name:"file" help:"CSV file with the header userId,username,email,phone and optionally passwordHash and locale (a BCP 47 tag) ('-' for standard input)."`
	DryRun      bool   `name:"dry-run" help:"Validate every row and count what would change; write nothing."`
	Replace     bool   `name:"replace" help:"Write every cell as given: an empty cell clears the stored email or phone. Without it an empty cell leaves the stored value alone."`
	Batch       int    `name:"batch" default:"1000" help:"Rows per transaction."`
}

// importProgress prints progress: a live line on a terminal, periodic lines otherwise.
type importProgress struct {
	out      io.Writer
	terminal bool
	total    int64 // bytes, 0 when unknown
	start    time.Time
	last     time.Time
}

func (p *importProgress) report(rows int, read int64, final bool) {
	now := time.Now()
	if !final && now.Sub(p.last) < map[bool]time.Duration{true: 200 * time.Millisecond, false: 5 * time.Second}[p.terminal] {
		return
	}
	p.last = now
	elapsed := now.Sub(p.start).Seconds()
	rate := float64(rows) / max(elapsed, 1e-3)
	line := fmt.Sprintf("%d rows, %.0f rows/s", rows, rate)
	if p.total > 0 && read > 0 && !final {
		frac := float64(read) / float64(p.total)
		eta := time.Duration(elapsed*(1-frac)/frac) * time.Second
		line += fmt.Sprintf(", %.0f%%, ETA %s", 100*frac, eta.Round(time.Second))
	}
	if p.terminal {
		fmt.Fprintf(p.out, "\r\033[K%s", line)
		if final {
			fmt.Fprintln(p.out)
		}
		return
	}
	fmt.Fprintln(p.out, "import:", line)
}

// countingReader counts bytes read, for progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Run imports. Exit status 0: every row imported; 1: some were rejected
// (the rest imported).
func (c *UserImportCmd) Run(ctx context.Context, g *Globals) error {
	var src io.Reader = g.stdin
	var size int64
	if c.File != "-" {
		f, err := os.Open(c.File)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		src = f
	}
	if c.Batch < 1 || c.Batch > 10000 {
		return errors.New("--batch must be between 1 and 10000")
	}
	a, err := g.open(ctx)
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.Reset.Settings(ctx, c.Institution); err != nil {
		return describe(err)
	}
	counter := &countingReader{r: src}
	r := csv.NewReader(counter)
	r.ReuseRecord = true
	r.FieldsPerRecord = 0 // every row as many fields as the header: a truncated row is rejected
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("reading the header: %w", err)
	}
	want := []string{"userId", "username", "email", "phone"}
	cols := map[string]int{}
	for i, h := range header {
		cols[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, w := range want {
		if _, ok := cols[w]; !ok {
			return fmt.Errorf("the header must name %s (got %q)", strings.Join(want, ","), strings.Join(header, ","))
		}
	}
	progress := &importProgress{out: g.stderr, terminal: isTerminal(g.stderr), total: size, start: time.Now()}
	actor := reset.Actor{ClientID: "cli:import"}
	var rows int
	var sum reset.ImportResult
	sum.Rejected = []reset.RowError{}
	opt := reset.ImportOptions{DryRun: c.DryRun, Replace: c.Replace}
	batch := make([]reset.ImportRow, 0, c.Batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := a.Reset.ImportUsers(ctx, actor, c.Institution, batch, opt)
		if err != nil {
			return err
		}
		sum.Imported += res.Imported
		sum.ContactsChanged += res.ContactsChanged
		sum.NoticesQueued += res.NoticesQueued
		for _, e := range res.Rejected {
			fmt.Fprintf(g.stderr, "line %d rejected: %s\n", e.Line, e.Reason)
		}
		sum.Rejected = append(sum.Rejected, res.Rejected...)
		batch = batch[:0]
		progress.report(rows, counter.n, false)
		return nil
	}
	field := func(rec []string, name string) string {
		if i, ok := cols[name]; ok && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		rows++
		if err != nil {
			var perr *csv.ParseError
			if errors.As(err, &perr) {
				reason := perr.Err.Error()
				if errors.Is(err, csv.ErrFieldCount) {
					reason = fmt.Sprintf("%d fields, the header has %d (userId,username,email,phone: leave a cell empty, keep its comma)", len(rec), len(header))
				}
				sum.Rejected = append(sum.Rejected, reset.RowError{Line: perr.StartLine, Reason: reason})
				fmt.Fprintf(g.stderr, "line %d rejected: %s\n", perr.StartLine, reason)
				continue
			}
			return err
		}
		batch = append(batch, reset.ImportRow{Line: line, UserID: field(rec, "userId"), Username: field(rec, "username"), Email: field(rec, "email"), Phone: field(rec, "phone"), PasswordHash: field(rec, "passwordHash"), Locale: field(rec, "locale")})
		if len(batch) == c.Batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	progress.report(rows, counter.n, true)
	if g.JSON {
		if err := g.printJSON(map[string]any{"rows": rows, "imported": sum.Imported, "rejected": sum.Rejected,
			"contactsChanged": sum.ContactsChanged, "noticesQueued": sum.NoticesQueued, "dryRun": c.DryRun, "replace": c.Replace}); err != nil {
			return err
		}
	} else if c.DryRun {
		fmt.Fprintf(g.stdout, "%d rows: %d valid, %d rejected; would change %d contacts and queue %d notices (dry run, nothing written)\n",
			rows, sum.Imported, len(sum.Rejected), sum.ContactsChanged, sum.NoticesQueued)
	} else {
		fmt.Fprintf(g.stdout, "%d rows: %d imported, %d rejected; %d contacts changed, %d notices queued\n",
			rows, sum.Imported, len(sum.Rejected), sum.ContactsChanged, sum.NoticesQueued)
	}
	if len(sum.Rejected) > 0 {
		return exitError(1)
	}
	return nil
}
