package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/bench"
	"github.com/resetd/resetd/internal/config"
)

// BenchCmd is `resetd bench`: load on every flow against a real server on
// loopback, with the machine's raw limits measured in the same run.
type BenchCmd struct {
	Users        int           `name:"users" default:"10000" help:"Users to seed (through the import path)."`
	Concurrency  int           `name:"concurrency" short:"c" default:"32" help:"Closed-loop clients per flow."`
	Light        int           `name:"light-concurrency" default:"8" help:"Clients of the send-reset-light flow (latency under light load)."`
	InProcess    bool          `name:"in-process" help:"Run the server inside the bench's process instead of as a child 'resetd serve' (no server CPU figure; needed for --memprofile)."`
	Duration     time.Duration `name:"duration" short:"d" default:"5s" help:"Load time per flow."`
	Flows        []string      `name:"flows" sep:"," help:"Flows to run (default all but bulk): token,send-reset,send-reset-light,otp,self-service,change,overload,bulk (a run with bulk keeps the server in-process)."`
	BulkRate     int           `name:"bulk-rate" help:"bulkRatePerSecond of the bulk flow (0: the setting's default, 50)."`
	Overload     int           `name:"overload" default:"10" help:"Client multiple for the overload flow (password change beyond argon2id capacity)."`
	QueueWorkers int           `name:"queue-workers" help:"Concurrent deliveries of the in-process server (0: the server's default)."`
	LimitTime    time.Duration `name:"limit-time" default:"1500ms" help:"How long each raw limit is measured (before and after each flow)."`

	URL          string `name:"url" help:"Target a running server instead of starting one in-process (needs --client-id, --client-secret, --institution; point its --smtp at --smtp-listen)."`
	ClientID     string `name:"client-id" help:"URL mode: a client of --institution holding every scope."`
	ClientSecret string `name:"client-secret" env:"RESETD_BENCH_CLIENT_SECRET" help:"URL mode: that client's secret."`
	Institution  string `name:"institution" help:"URL mode: the institution to load."`
	SMTPListen   string `name:"smtp-listen" help:"Address of the bench's SMTP server (default a free loopback port)."`
	ServerPID    int    `name:"server-pid" help:"URL mode: the server's pid, for its peak RSS."`

	CPUProfile string `name:"cpuprofile" help:"Write a CPU profile to this file: the server process's own (start to stop), or with --in-process the bench process's during the flows."`
	MemProfile string `name:"memprofile" help:"Write an allocation profile of the flows to this file (needs --in-process)."`
}

// Run runs the benchmark and prints the table (or JSON).
func (c *BenchCmd) Run(ctx context.Context, g *Globals) error {
	db := g.DB
	if db == config.DB {
		// The global default would load the operator's own database:
		// a benchmark gets a scratch file unless told otherwise.
		db = ""
	}
	var flows []string
	for _, f := range c.Flows {
		if f = strings.TrimSpace(f); f != "" {
			flows = append(flows, f)
		}
	}
	var server []string
	if !c.InProcess && c.URL == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: the server's binary: %w", err)
		}
		server = []string{exe}
	}
	rep, err := bench.Run(ctx, bench.Config{
		DB: db, SecretKey: g.SecretKey, URL: c.URL, Users: c.Users, Concurrency: c.Concurrency, LightConcurrency: c.Light, Duration: c.Duration, Flows: flows,
		ServerCommand:  server,
		OverloadFactor: c.Overload, QueueWorkers: c.QueueWorkers, LimitDuration: c.LimitTime, BulkRate: c.BulkRate,
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, Institution: c.Institution, SMTPListen: c.SMTPListen, ServerPID: c.ServerPID,
		CPUProfile: c.CPUProfile, MemProfile: c.MemProfile,
		Progress: func(format string, args ...any) { fmt.Fprintf(g.stderr, "bench: "+format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	if g.JSON {
		return bench.WriteJSON(g.stdout, rep)
	}
	return bench.WriteTable(g.stdout, rep)
}
