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
	File        string `arg:"" name:"file" help:"CSV file with the header userId,username,email,phone and optionally passwordHash ('-' for standard input)."`
	DryRun      bool   `name:"dry-run" help:"Validate every row, write nothing."`
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
	var total int64
	if c.File != "-" {
		f, err := os.Open(c.File)
		if err != nil {
			return err
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil {
			total = fi.Size()
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
	r.FieldsPerRecord = -1
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
	progress := &importProgress{out: g.stderr, terminal: isTerminal(g.stderr), total: total, start: time.Now()}
	actor := reset.Actor{ClientID: "cli:import"}
	var imported, rows int
	var rejected []reset.RowError
	batch := make([]reset.ImportRow, 0, c.Batch)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, rej, err := a.Reset.ImportUsers(ctx, actor, c.Institution, batch, c.DryRun)
		if err != nil {
			return err
		}
		imported += n
		for _, e := range rej {
			fmt.Fprintf(g.stderr, "line %d rejected: %s\n", e.Line, e.Reason)
		}
		rejected = append(rejected, rej...)
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
				rejected = append(rejected, reset.RowError{Line: perr.Line, Reason: perr.Err.Error()})
				fmt.Fprintf(g.stderr, "line %d rejected: %s\n", perr.Line, perr.Err)
				continue
			}
			return err
		}
		batch = append(batch, reset.ImportRow{Line: line, UserID: field(rec, "userId"), Username: field(rec, "username"), Email: field(rec, "email"), Phone: field(rec, "phone"), PasswordHash: field(rec, "passwordHash")})
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
	verb := "imported"
	if c.DryRun {
		verb = "valid (dry run, nothing written)"
	}
	if g.JSON {
		if err := g.printJSON(map[string]any{"rows": rows, "imported": imported, "rejected": rejected, "dryRun": c.DryRun}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(g.stdout, "%d rows: %d %s, %d rejected\n", rows, imported, verb, len(rejected))
	}
	if len(rejected) > 0 {
		return exitError(1)
	}
	return nil
}
