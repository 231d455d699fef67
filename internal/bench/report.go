package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the report as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report for a person.
func WriteTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "resetd bench: %s, %d users, %d clients, %s per flow\n", r.Store, r.Users, r.Concurrency, r.Duration)
	fmt.Fprintf(w, "machine: %s, %d cores, %s, %s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.OS, r.Machine.GoVersion)
	if r.Seed.Skipped {
		fmt.Fprintf(w, "users: already seeded\n")
	} else {
		fmt.Fprintf(w, "users: seeded in %.1f s (%s)\n", r.Seed.Seconds, r.Seed.Method)
	}
	p := r.Limits.Argon2
	fmt.Fprintf(w, "raw limits (mean of the runs beside the flows): %s durable single-row commits/s (%s, %d writers); %.1f argon2id hashes/s (m=%d t=%d p=%d, %d cores)\n\n",
		thousands(r.Limits.CommitsPerSec), r.Limits.Store, r.Limits.Writers, r.Limits.HashesPerSec, p.Memory, p.Time, p.Threads, r.Limits.Cores)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flow\top\tclients\treq/s\tp50 ms\tp95 ms\tp99 ms\terrors\t503s\tserver CPU ms/req\tbench CPU µs/req\tpeak RSS MiB\tmail lag p50/p99 ms\tratio\t")
	for _, f := range r.Flows {
		for i, op := range f.Ops {
			flow, rss, lag, ratio, cpu, srv := "", "", "", "", "", ""
			if i == 0 {
				flow = f.Flow
				if f.CPUPerOpUs > 0 {
					cpu = fmt.Sprintf("%.0f", f.CPUPerOpUs)
				}
				if f.ServerCPUms > 0 {
					srv = fmt.Sprintf("%.3f", f.ServerCPUms)
				}
				rss = fmt.Sprintf("%.0f", f.PeakRSSMiB)
				if f.Delivery != nil {
					lag = fmt.Sprintf("%.0f / %.0f", f.Delivery.P50ms, f.Delivery.P99ms)
					if f.Delivery.Undelivered > 0 {
						lag += fmt.Sprintf(" (%d late)", f.Delivery.Undelivered)
					}
				}
				if f.RatioOf != "" {
					ratio = fmt.Sprintf("%.2f of %s %s", f.Ratio, thousands(f.Limit), f.RatioOf)
				}
				if f.CPURatio > 0 {
					ratio += fmt.Sprintf(" (CPU %.2f)", f.CPURatio)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.2f\t%.2f\t%.2f\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n",
				flow, op.Op, f.Concurrency, thousands(op.RPS), op.P50ms, op.P95ms, op.P99ms, op.Errors, op.Shed, srv, cpu, rss, lag, ratio)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, f := range r.Flows {
		if b := f.Bulk; b != nil {
			fmt.Fprintf(w, "bulk: %s users queued in %.1f s (%s users/s); drained %.1f messages/s over %.0f s at a configured %d/s (%.3f); peak RSS %.0f MiB\n",
				thousands(float64(b.Users)), b.EnqueueSeconds, thousands(b.EnqueuePerSec), b.DrainPerSec, b.DrainSeconds, b.RatePerSec, b.DrainRatio, f.PeakRSSMiB)
			if l := b.Ordinary; l != nil {
				fmt.Fprintf(w, "bulk: ordinary resets of another institution meanwhile (%d clients, %.0f/s): mail lag p50 %.0f ms, p99 %.0f ms, max %.0f ms over %d messages, %d undelivered\n",
					b.OrdinaryClients, b.OrdinaryPerSec, l.P50ms, l.P99ms, l.MaxMs, l.Messages, l.Undelivered)
			}
		}
	}
	for _, f := range r.Flows {
		if f.Note != "" {
			fmt.Fprintf(w, "note: %s: %s\n", f.Flow, f.Note)
		}
	}
	if len(r.Flows) > 0 {
		f := r.Flows[0]
		fmt.Fprintf(w, "peak RSS is %s (VmHWM, reset before each flow)\n", f.RSSScope)
		if f.RSSScope == "server" {
			fmt.Fprintln(w, "server CPU ms/req: the server's process alone, until the flow's mail was delivered; bench CPU µs/req: the load generator and SMTP server")
		} else {
			fmt.Fprintln(w, "bench CPU µs/req: server, load generator and SMTP server together (the server is in-process)")
		}
	}
	if len(r.Targets) > 0 {
		fmt.Fprintln(w, "\ntargets:")
		for _, t := range r.Targets {
			mark := "MISSED"
			if t.Met {
				mark = "met"
			}
			fmt.Fprintf(w, "  %-6s %s: %s\n", mark, t.Target, t.Detail)
		}
	}
	return nil
}

func thousands(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
