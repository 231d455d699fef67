// Package bench is `resetd bench`: it starts a real resetd on loopback (or
// targets one by URL), seeds an institution and its users, drives
// closed-loop load on each flow with a real SMTP server on loopback as the
// mail relay, and measures in the same run the raw limits of the machine
// (durable single-row commits/s of the store, argon2id hashes/s), so each
// flow's figure is also a ratio that holds on a noisy shared machine.
package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/resetd/resetd/internal/config"
	"github.com/resetd/resetd/internal/password"
)

// Flow names, in the order a run takes them. A flow is a name here, its
// iteration in runFlow (flows.go), the raw limit its ratio is taken
// against in Run, and its targets in checkTargets; a bulk forced-reset
// flow (enqueue and drain rates, ordinary resets' mail lag during the
// drain) takes the same four places.
const (
	FlowToken     = "token"
	FlowSendReset = "send-reset"
	// FlowSendResetLight is send-reset with LightConcurrency clients: the
	// latency of a lightly loaded server.
	FlowSendResetLight = "send-reset-light"
	FlowOTP            = "otp"
	FlowSelfService    = "self-service"
	FlowChange         = "change"
	FlowOverload       = "overload"
	FlowBulk           = "bulk"
)

// AllFlows lists every flow in run order (the bulk last: it gives every
// user a new link).
var AllFlows = []string{FlowToken, FlowSendReset, FlowSendResetLight, FlowOTP, FlowSelfService, FlowChange, FlowOverload, FlowBulk}

// DefaultFlows are the flows of a run that names none: all but the bulk,
// which is asked for by name (it drains for at least 20 s, and follows
// its progress in the server's own process, so a run with it keeps the
// server in-process).
var DefaultFlows = AllFlows[:len(AllFlows)-1]

// Config is one benchmark run.
type Config struct {
	// DB is the store: "" (a fresh SQLite file in a temporary directory),
	// sqlite:PATH[?synchronous=normal] or postgres://…
	DB string
	// SecretKey is RESETD_SECRET_KEY for the in-process server; "" keeps
	// a trial key in the database, as serve --dev does.
	SecretKey   string
	URL         string // target a running server instead of starting one
	Users       int
	Concurrency int
	// LightConcurrency is the clients of send-reset-light (default 8).
	LightConcurrency int
	Duration         time.Duration
	Flows            []string
	// OverloadFactor multiplies Concurrency for the overload flow.
	OverloadFactor int
	QueueWorkers   int
	// BulkRate is bulkRatePerSecond for the bulk flow (0: the default).
	BulkRate int
	// LimitDuration is how long each raw limit is measured.
	LimitDuration time.Duration

	// For URL mode: a client of the institution holding every scope, and
	// the address the bench's SMTP server listens on (the target's --smtp).
	ClientID, ClientSecret, Institution string
	SMTPListen                          string
	ServerPID                           int
	// ServerCommand, when set (and URL is not), runs the server as a child
	// process: ServerCommand[0] with ServerCommand[1:] and then `serve …`,
	// so that its CPU time and memory are its own. Empty: in-process.
	ServerCommand []string

	// CPUProfile is written by the server's process when it is a child
	// (the server's own profile), else by this one.
	CPUProfile, MemProfile string
	// Progress receives one line per step (nil: silent).
	Progress func(format string, args ...any)
}

// Report is everything a run measured.
type Report struct {
	Machine     Machine        `json:"machine"`
	Command     string         `json:"command,omitempty"`
	Store       string         `json:"store"`
	Users       int            `json:"users"`
	Concurrency int            `json:"concurrency"`
	Duration    string         `json:"duration_per_flow"`
	Seed        SeedResult     `json:"seed"`
	Limits      Limits         `json:"limits"`
	Flows       []FlowResult   `json:"flows"`
	Targets     []TargetResult `json:"targets"`
}

// Machine describes where the run happened.
type Machine struct {
	Cores     int    `json:"cores"`
	CPU       string `json:"cpu"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
}

// SeedResult says how the users were put in place.
type SeedResult struct {
	Method  string  `json:"method"`
	Seconds float64 `json:"seconds"`
	Skipped bool    `json:"skipped"`
}

// FlowResult is one flow's run.
type FlowResult struct {
	Flow        string     `json:"flow"`
	Concurrency int        `json:"concurrency"`
	Seconds     float64    `json:"seconds"`
	Ops         []OpResult `json:"ops"`
	PeakRSSMiB  float64    `json:"peak_rss_mib"`
	// CPUPerOpUs is CPU time (µs) of the bench's own process per request
	// of the first op while the flow ran: server, load generator and SMTP
	// server together when the server is in-process, else the last two.
	CPUPerOpUs float64 `json:"cpu_us_per_op,omitempty"`
	// ServerCPUms is CPU time (ms) of the server's process alone per
	// request of the first op, from the flow's start until its messages
	// were delivered (delivery included); 0 when the server runs in the
	// bench's process. A PostgreSQL server's own processes are not in it.
	ServerCPUms float64 `json:"server_cpu_ms_per_op,omitempty"`
	// RSSScope says whose memory PeakRSSMiB is: "server+loadgen" when the
	// server runs in the bench's process, "server" for --server-pid.
	RSSScope string `json:"rss_scope"`
	Delivery *Lag   `json:"delivery,omitempty"`
	// HashCPUms is the CPU time of one raw argon2id hash (the mean of the
	// runs beside a change flow), and CPURatio that over ServerCPUms: how
	// much of a change's server CPU is the hash.
	HashCPUms float64 `json:"raw_hash_cpu_ms,omitempty"`
	CPURatio  float64 `json:"cpu_ratio,omitempty"`
	// Limit is the raw limit RatioOf names, measured right before and
	// right after the flow (mean); Ratio is the flow's req/s over it.
	Limit   float64 `json:"limit,omitempty"`
	Ratio   float64 `json:"ratio,omitempty"`
	RatioOf string  `json:"ratio_of,omitempty"`
	Note    string  `json:"note,omitempty"`
	// Bulk holds the bulk flow's own figures.
	Bulk *BulkResult `json:"bulk,omitempty"`
}

// Lag is accept → SMTP-server-has-it for the messages a flow sent.
type Lag struct {
	Messages    int     `json:"messages"`
	Undelivered int     `json:"undelivered"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	MaxMs       float64 `json:"max_ms"`
	DrainSec    float64 `json:"drain_seconds"`
}

// TargetResult is one target, checked.
type TargetResult struct {
	Target string `json:"target"`
	Met    bool   `json:"met"`
	Detail string `json:"detail"`
}

func (c *Config) progress(format string, args ...any) {
	if c.Progress != nil {
		c.Progress(format, args...)
	}
}

// Run runs the benchmark.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Users <= 0 {
		cfg.Users = 10000
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	if cfg.LightConcurrency <= 0 {
		cfg.LightConcurrency = 8
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.OverloadFactor <= 0 {
		cfg.OverloadFactor = 10
	}
	if cfg.LimitDuration <= 0 {
		cfg.LimitDuration = 1500 * time.Millisecond
	}
	if len(cfg.Flows) == 0 {
		cfg.Flows = DefaultFlows
	}
	for _, f := range cfg.Flows {
		if !slices.Contains(AllFlows, f) {
			return nil, fmt.Errorf("bench: unknown flow %q (flows: %s)", f, strings.Join(AllFlows, ", "))
		}
	}
	if cfg.URL != "" && (cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.Institution == "") {
		return nil, errors.New("bench: --url needs --client-id, --client-secret and --institution")
	}

	dir, err := os.MkdirTemp("", "resetd-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)

	rep := &Report{
		Machine:     Machine{Cores: runtime.NumCPU(), CPU: cpuModel(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH},
		Users:       cfg.Users,
		Concurrency: cfg.Concurrency,
		Duration:    cfg.Duration.String(),
	}

	mail, err := newSink(cfg.SMTPListen)
	if err != nil {
		return nil, fmt.Errorf("bench: smtp server: %w", err)
	}
	defer mail.close()

	// The target: an in-process server, or one given by URL.
	t := &target{cfg: cfg, sink: mail, rssPID: cfg.ServerPID}
	db := cfg.DB
	if db == "" {
		db = "sqlite:" + filepath.Join(dir, "bench.db")
	}
	child := cfg.URL == "" && len(cfg.ServerCommand) > 0 && !slices.Contains(cfg.Flows, FlowBulk)
	if child && cfg.MemProfile != "" {
		return nil, errors.New("bench: --memprofile profiles this process: it needs the server in-process (--in-process)")
	}
	switch {
	case child:
		stop, err := t.startChild(ctx, db, dir)
		if err != nil {
			return nil, err
		}
		defer stop()
	case cfg.URL == "":
		stop, err := t.startInProcess(ctx, db)
		if err != nil {
			return nil, err
		}
		defer stop()
	default:
		t.base = config.BaseURL(cfg.URL)
		t.inst, t.clientID, t.clientSecret = cfg.Institution, cfg.ClientID, cfg.ClientSecret
	}
	t.http = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         loopbackSpread(),
			MaxIdleConns:        4096,
			MaxIdleConnsPerHost: 4096,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
	}
	defer t.http.CloseIdleConnections()

	// Raw limits: what the store commits and argon2id hashes on this
	// machine now. Each flow's own limit is measured right before and
	// right after it, so that the ratio holds on a busy shared machine
	// whose capacity drifts from one minute to the next.
	synchronous := "full"
	var rawCommits func() (float64, error)
	switch {
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		rep.Store = "postgres"
		rawCommits = func() (float64, error) { return rawPostgresCommits(ctx, db, cfg.Concurrency, cfg.LimitDuration) }
	default:
		if _, opts, ok := strings.Cut(db, "?"); ok && strings.Contains(opts, "synchronous=normal") {
			synchronous = "normal"
		}
		rep.Store = "sqlite (synchronous=" + strings.ToUpper(synchronous) + ")"
		scratch := dir
		if p, _, _ := strings.Cut(strings.TrimPrefix(db, "sqlite:"), "?"); cfg.URL == "" && p != "" {
			scratch = filepath.Dir(p) // same file system as the database
		}
		rawCommits = func() (float64, error) {
			return rawSQLiteCommits(ctx, scratch, synchronous, cfg.Concurrency, cfg.LimitDuration)
		}
	}
	// Each raw argon2id run also says how much CPU one hash took here;
	// hashCPU keeps the latest.
	var hashCPU time.Duration
	rawHashes := func() (float64, error) {
		rate, cpu, err := rawArgon2(ctx, password.DefaultParams, cfg.LimitDuration)
		hashCPU = cpu
		return rate, err
	}
	rep.Limits.Store, rep.Limits.Writers = rep.Store, cfg.Concurrency
	rep.Limits.Argon2, rep.Limits.Cores = password.DefaultParams, runtime.NumCPU()
	var commitRuns, hashRuns []float64

	if !child {
		cfg.progress("seeding %d users…", cfg.Users)
	}
	if rep.Seed, err = t.seed(ctx); err != nil {
		return nil, err
	}

	stopProfile := func() {}
	if cfg.CPUProfile != "" && !child {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		// Stopped after the flows: the raw limits measured after them
		// would only blur the profile.
		stopProfile = pprof.StopCPUProfile
		defer func() { stopProfile() }()
	}
	if cfg.MemProfile != "" {
		runtime.MemProfileRate = 64 << 10
	}

	// Reset tokens for the change flows are won before they start, as
	// many as the machine can hash in the flow's time and some.
	planLimits := rep.Limits
	if slices.Contains(cfg.Flows, FlowChange) || slices.Contains(cfg.Flows, FlowOverload) {
		if planLimits.HashesPerSec, err = rawHashes(); err != nil {
			return nil, err
		}
	}
	plan := newPlan(cfg, planLimits)
	for _, f := range AllFlows {
		if !slices.Contains(cfg.Flows, f) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var limit func() (float64, error)
		switch f {
		case FlowSendReset, FlowSendResetLight, FlowSelfService, FlowOTP:
			limit = rawCommits
		case FlowChange, FlowOverload:
			limit = rawHashes
		}
		var before float64
		if limit != nil {
			cfg.progress("raw limit before %s…", f)
			if before, err = limit(); err != nil {
				return nil, err
			}
		}
		cpuBefore := hashCPU
		cfg.progress("flow %s: %d clients for %s…", f, plan.concurrency(f), cfg.Duration)
		r, err := t.runFlow(ctx, f, plan)
		if err != nil {
			return nil, fmt.Errorf("bench: flow %s: %w", f, err)
		}
		if limit != nil {
			cfg.progress("raw limit after %s…", f)
			after, err := limit()
			if err != nil {
				return nil, err
			}
			r.Limit = (before + after) / 2
		}
		rps := r.Ops[0].RPS
		switch f {
		case FlowSendReset, FlowSendResetLight, FlowSelfService, FlowOTP:
			r.RatioOf = "durable commits/s"
			commitRuns = append(commitRuns, r.Limit)
			if f == FlowOTP {
				rps += r.Ops[len(r.Ops)-1].RPS // a send and a verify: two write transactions
			}
		case FlowChange, FlowOverload:
			r.RatioOf = "argon2id hashes/s"
			hashRuns = append(hashRuns, r.Limit)
			if r.ServerCPUms > 0 {
				// CPU of a raw hash over the server's CPU per change: the
				// share of a change's cost that is argon2id itself. Unlike
				// the rate ratio it does not move with what else the
				// machine runs in the seconds between the measurements.
				raw := float64((cpuBefore+hashCPU)/2) / float64(time.Millisecond)
				r.HashCPUms, r.CPURatio = raw, raw/r.ServerCPUms
			}
		}
		if r.Limit > 0 {
			r.Ratio = rps / r.Limit
		}
		rep.Flows = append(rep.Flows, r)
	}
	stopProfile()
	stopProfile = func() {}
	if cfg.MemProfile != "" {
		f, err := os.Create(cfg.MemProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			return nil, err
		}
	}
	// The header's limits: each measured once more if no flow needed it.
	if len(commitRuns) == 0 {
		v, err := rawCommits()
		if err != nil {
			return nil, err
		}
		commitRuns = append(commitRuns, v)
	}
	if len(hashRuns) == 0 {
		v, err := rawHashes()
		if err != nil {
			return nil, err
		}
		hashRuns = append(hashRuns, v)
	}
	rep.Limits.CommitsPerSec, rep.Limits.HashesPerSec = mean(commitRuns), mean(hashRuns)
	rep.Targets = checkTargets(rep)
	return rep, nil
}

// plan sizes each flow's clients and the reserved users.
type plan struct {
	cfg     Config
	limits  Limits
	general int // users [0, general) take links, OTPs and self-service
	// change tokens are won for users [general, Users): each such user
	// changes its password once, so none has a history to check against
	// (SPEC §8: the change figure is for users without history).
	changeTokens, overloadTokens int
}

func newPlan(cfg Config, l Limits) *plan {
	p := &plan{cfg: cfg, limits: l}
	per := int(l.HashesPerSec*cfg.Duration.Seconds()*1.5) + 20
	need := 0
	if slices.Contains(cfg.Flows, FlowChange) {
		p.changeTokens = per + cfg.Concurrency
		need += p.changeTokens
	}
	if slices.Contains(cfg.Flows, FlowOverload) {
		// every client holds a token while its request is in flight
		p.overloadTokens = per + cfg.Concurrency*cfg.OverloadFactor
		need += p.overloadTokens
	}
	if need > cfg.Users/2 {
		scale := float64(cfg.Users/2) / float64(need)
		p.changeTokens = int(float64(p.changeTokens) * scale)
		p.overloadTokens = int(float64(p.overloadTokens) * scale)
		need = p.changeTokens + p.overloadTokens
	}
	p.general = cfg.Users - need
	return p
}

func (p *plan) concurrency(flow string) int {
	switch flow {
	case FlowOverload:
		return p.cfg.Concurrency * p.cfg.OverloadFactor
	case FlowSendResetLight:
		return p.cfg.LightConcurrency
	}
	return p.cfg.Concurrency
}

// checkTargets compares the run with the service's throughput targets.
// The send-reset figures are for SQLite except the one for PostgreSQL;
// CPU per send is the server process's own (delivery included), so it is
// checked only when the server ran in a process of its own.
func checkTargets(r *Report) []TargetResult {
	pg := r.Store == "postgres"
	var out []TargetResult
	for _, f := range r.Flows {
		op := f.Ops[0]
		switch f.Flow {
		case FlowSendReset:
			if pg {
				out = append(out, TargetResult{"PostgreSQL send-reset ≥ 1,000 req/s", op.RPS >= 1000, fmt.Sprintf("%.0f req/s at %d clients", op.RPS, f.Concurrency)})
			} else {
				out = append(out,
					TargetResult{"send-reset ≥ 1,500 req/s", op.RPS >= 1500, fmt.Sprintf("%.0f req/s at %d clients", op.RPS, f.Concurrency)},
					TargetResult{"send-reset p99 ≤ 40 ms", op.P99ms <= 40, fmt.Sprintf("p99 %.1f ms at %d clients", op.P99ms, f.Concurrency)})
			}
			if f.Delivery != nil {
				out = append(out, TargetResult{"mail lag p99 ≤ 1 s", f.Delivery.P99ms <= 1000 && f.Delivery.Undelivered == 0,
					fmt.Sprintf("p99 %.0f ms over %d messages, %d undelivered", f.Delivery.P99ms, f.Delivery.Messages, f.Delivery.Undelivered)})
			}
			if !pg {
				if f.ServerCPUms > 0 {
					out = append(out, TargetResult{"server CPU per send ≤ 0.8 ms (delivery included)", f.ServerCPUms <= 0.8, fmt.Sprintf("%.3f ms", f.ServerCPUms)})
				} else {
					out = append(out, TargetResult{"server CPU per send ≤ 0.8 ms (delivery included)", false, "not measured: the server shared the bench's process (run without --in-process)"})
				}
			}
		case FlowSendResetLight:
			if !pg {
				out = append(out, TargetResult{fmt.Sprintf("send-reset at %d clients p99 ≤ 15 ms", f.Concurrency), op.P99ms <= 15, fmt.Sprintf("p99 %.1f ms", op.P99ms)})
			}
		case FlowToken:
			out = append(out, TargetResult{"token endpoint ≥ 5,000 req/s", op.RPS >= 5000, fmt.Sprintf("%.0f req/s", op.RPS)})
		case FlowChange:
			detail := fmt.Sprintf("%.2f (%.1f of %.1f/s)", f.Ratio, op.RPS, f.Limit)
			if f.CPURatio > 0 {
				detail += fmt.Sprintf("; CPU: a raw hash %.1f ms of the server's %.1f ms per change (%.2f)", f.HashCPUms, f.ServerCPUms, f.CPURatio)
			}
			out = append(out, TargetResult{"change ≥ 0.9 × raw argon2id hashes/s", f.Ratio >= 0.9, detail})
		case FlowBulk:
			if b := f.Bulk; b != nil {
				out = append(out,
					TargetResult{"bulk queued ≥ 10,000 users/s", b.EnqueuePerSec >= 10000, fmt.Sprintf("%.0f users/s (%d users in %.1f s)", b.EnqueuePerSec, b.Users, b.EnqueueSeconds)},
					TargetResult{"bulk drains at the configured rate ±5%", b.DrainRatio >= 0.95 && b.DrainRatio <= 1.05, fmt.Sprintf("%.1f/s for %d/s (%.3f)", b.DrainPerSec, b.RatePerSec, b.DrainRatio)})
				if b.Ordinary != nil {
					out = append(out, TargetResult{"ordinary mail lag p99 ≤ 2 s during a bulk", b.Ordinary.P99ms <= 2000 && b.Ordinary.Undelivered == 0,
						fmt.Sprintf("p99 %.0f ms over %d messages, %d undelivered", b.Ordinary.P99ms, b.Ordinary.Messages, b.Ordinary.Undelivered)})
				}
			}
		case FlowOverload:
			out = append(out, TargetResult{"10× overload: RSS < 512 MiB, excess gets 503 + Retry-After",
				f.PeakRSSMiB < 512 && op.Shed > 0 && op.Errors == 0,
				fmt.Sprintf("peak RSS %.0f MiB (%s), %d × 503, %d errors", f.PeakRSSMiB, f.RSSScope, op.Shed, op.Errors)})
		}
	}
	return out
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// quietHandler logs warnings to stderr, so a failing run says why without
// a line per request, until the run is over: shutting down with deliveries
// in flight is expected then, not worth a line each.
type quietHandler struct {
	slog.Handler
	quiet *atomic.Bool
}

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return !h.quiet.Load() && h.Handler.Enabled(ctx, l)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as), h.quiet}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name), h.quiet}
}

func serverLogger(quiet *atomic.Bool) *slog.Logger {
	return slog.New(quietHandler{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}), quiet})
}

// loopbackSpread dials a loopback server from the source addresses
// 127.0.0.2–127.0.0.9 in turn, as clients of many addresses would reach a
// server: from one address the server's cap on connections per address
// (256) would refuse the overload flow's 320 clients at accept, before
// any reached the handler whose answer (503 and Retry-After) the flow
// measures. Any other server is dialled from the default address.
func loopbackSpread() func(ctx context.Context, network, addr string) (net.Conn, error) {
	var next atomic.Uint32
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		if host, _, err := net.SplitHostPort(addr); err == nil {
			if ip := net.ParseIP(host); ip != nil && ip.To4() != nil && ip.IsLoopback() {
				d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+next.Add(1)%8))}
			}
		}
		return d.DialContext(ctx, network, addr)
	}
}
