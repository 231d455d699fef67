package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/resetd/resetd/internal/server"
)

var (
	// The reset link (not the "this wasn't me" link, /reset/dispute?token=).
	linkRE = regexp.MustCompile(`/reset\?token=([A-Za-z0-9_-]{43})`)
	codeRE = regexp.MustCompile(`code is:\s+(\d{6,10})`)
)

// errStop ends a worker early (it ran out of work).
var errStop = errors.New("bench: worker done")

// otpUsersPerWorker is how many users each OTP worker cycles through.
const otpUsersPerWorker = 16

// judge classifies an answer; requests cut short by the end of the run
// are not counted at all (record false).
func judge(ctx context.Context, status int, err error, want int) (out outcome, record bool) {
	if err != nil {
		return fail, ctx.Err() == nil
	}
	if status == want {
		return ok, true
	}
	return fail, true
}

func (t *target) runFlow(ctx context.Context, flow string, p *plan) (FlowResult, error) {
	if flow == FlowBulk {
		return t.bulkFlow(ctx)
	}
	c := p.concurrency(flow)
	res := FlowResult{Flow: flow, Concurrency: c, RSSScope: t.rssScope()}
	t.sink.resetStats()
	var it iteration
	mails := false
	var stopped atomic.Bool
	switch flow {
	case FlowToken:
		it = t.tokenFlow()
	case FlowSendReset, FlowSendResetLight:
		it, mails = t.sendResetFlow(p), true
	case FlowSelfService:
		it, mails = t.selfServiceFlow(p), true
	case FlowOTP:
		var err error
		if it, err = t.otpFlow(ctx, p); err != nil {
			return res, err
		}
		mails = true
		defer t.sink.setCapture(nil)
	case FlowChange, FlowOverload:
		lo, n := p.general, p.changeTokens
		if flow == FlowOverload {
			lo, n = p.general+p.changeTokens, p.overloadTokens
		}
		tokens, err := t.harvest(ctx, lo, n)
		if err != nil {
			return res, err
		}
		it = t.changeFlow(tokens, flow == FlowChange, &stopped)
		mails = true // "your password was changed" notices
	}
	runtime.GC()
	t.resetRSS()
	cpu0 := cpuTime()
	srv0, srvErr := t.serverCPU()
	samples, elapsed := closedLoop(ctx, c, t.cfg.Duration, it)
	cpu := cpuTime() - cpu0
	res.Seconds = elapsed.Seconds()
	res.Ops = summarise(samples, elapsed)
	if len(res.Ops) == 0 {
		return res, fmt.Errorf("no request completed in %s", t.cfg.Duration)
	}
	n := res.Ops[0].Requests
	if n > 0 {
		// Per request of the flow's first op: a figure that a busy shared
		// machine disturbs less than req/s (the time spent waiting for a
		// core is not in it). This process: server, load generator and
		// SMTP server when the server is in-process, else the last two.
		res.CPUPerOpUs = float64(cpu.Microseconds()) / float64(n)
	}
	if stopped.Load() {
		res.Note = "ran out of reset tokens before the end: raise --users"
	}
	if mails {
		res.Delivery = t.drain(ctx)
	}
	if srv1, err := t.serverCPU(); err == nil && srvErr == nil && n > 0 {
		// The server's own process, from before the first request until
		// its last message of the flow reached the SMTP server: delivery
		// included.
		res.ServerCPUms = float64((srv1 - srv0).Microseconds()) / 1000 / float64(n)
	}
	res.PeakRSSMiB = t.peakRSSMiB()
	return res, nil
}

// serverCPU is the CPU time the server's own process has used, when it
// is not this one (a child, or --url with --server-pid).
func (t *target) serverCPU() (time.Duration, error) {
	if t.rssPID == 0 {
		return 0, errors.New("bench: the server shares this process")
	}
	return processCPU(t.rssPID)
}

// cpuTime is this process's user+system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drain waits (bounded) for every accepted message to reach the SMTP
// server and returns the delivery lags.
func (t *target) drain(ctx context.Context) *Lag {
	start := time.Now()
	deadline := start.Add(60 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if _, outstanding, _ := t.sink.stats(); outstanding == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	lags, outstanding, _ := t.sink.stats()
	slices.Sort(lags)
	l := &Lag{Messages: len(lags), Undelivered: outstanding, DrainSec: time.Since(start).Seconds()}
	l.P50ms, l.P99ms = ms(pct(lags, 50)), ms(pct(lags, 99))
	if len(lags) > 0 {
		l.MaxMs = ms(lags[len(lags)-1])
	}
	return l
}

func (t *target) tokenFlow() iteration {
	body := []byte("grant_type=client_credentials")
	return func(ctx context.Context, _ int, r *recorder) error {
		start := time.Now()
		st, _, _, err := t.do(ctx, http.MethodPost, server.TokenPath, body, t.basic)
		if out, rec := judge(ctx, st, err, http.StatusOK); rec {
			r.add("token", start, out)
		}
		return nil
	}
}

func (t *target) sendResetFlow(p *plan) iteration {
	var next atomic.Int64
	body := []byte(`{"method":"email"}`)
	prefix := server.P + "/institutions/" + t.inst + "/users/"
	return func(ctx context.Context, _ int, r *recorder) error {
		i := int(next.Add(1)-1) % p.general
		start := time.Now()
		st, _, _, err := t.do(ctx, http.MethodPost, prefix+userID(i)+"/password/reset", body, t.auth)
		if out, rec := judge(ctx, st, err, http.StatusOK); rec {
			at := r.add("send-reset", start, out)
			if out == ok {
				t.sink.expect(email(i), at)
			}
		}
		return nil
	}
}

func (t *target) selfServiceFlow(p *plan) iteration {
	var next atomic.Int64
	return func(ctx context.Context, _ int, r *recorder) error {
		i := int(next.Add(1)-1) % p.general
		q := url.Values{"username": {username(i)}, "institutionId": {t.inst}}
		start := time.Now()
		st, _, _, err := t.do(ctx, http.MethodGet, "/api/Authorize/SendResetPassword?"+q.Encode(), nil, public)
		if out, rec := judge(ctx, st, err, http.StatusOK); rec {
			at := r.add("self-service", start, out)
			if out == ok {
				t.sink.expect(email(i), at)
			}
		}
		return nil
	}
}

// otpFlow: each worker cycles through its own users: send an OTP by
// email, wait for the code at the SMTP server, trade it for a reset token.
// Its rate is bounded by delivery lag: the customer cannot type a code
// before it arrives.
func (t *target) otpFlow(ctx context.Context, p *plan) (iteration, error) {
	c := t.cfg.Concurrency
	// Each worker has users of its own: two OTPs in flight for one user
	// would replace each other's code.
	per := min(otpUsersPerWorker, p.general/c)
	if per < 1 {
		return nil, fmt.Errorf("the otp flow needs at least --concurrency (%d) users", c)
	}
	n := c * per
	// Contact-method ids are opaque (a keyed hash): look them up first, as
	// the bank's platform would before letting the customer choose.
	cm := make([]string, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				st, b, _, err := t.do(ctx, http.MethodGet, server.P+"/institutions/"+t.inst+"/users/"+userID(i)+"/contact-methods", nil, t.auth)
				var out struct {
					ContactMethods []struct{ ID, Type string } `json:"contactMethods"`
				}
				if err == nil && st == http.StatusOK {
					err = json.Unmarshal(b, &out)
				} else if err == nil {
					err = fmt.Errorf("status %d: %s", st, b)
				}
				for _, m := range out.ContactMethods {
					if m.Type == "email" {
						cm[i] = m.ID
					}
				}
				if err == nil && cm[i] == "" {
					err = errors.New("no email contact method")
				}
				if err != nil {
					once.Do(func() { firstErr = fmt.Errorf("contact methods of %s: %w", userID(i), err) })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	codes := make([]<-chan string, n)
	for i := range n {
		codes[i] = t.sink.want(email(i))
	}
	t.sink.setCapture(codeRE)
	round := make([]int, c)
	prefix := server.P + "/institutions/" + t.inst
	return func(ctx context.Context, w int, r *recorder) error {
		i := w + c*(round[w]%per)
		round[w]++
		for len(codes[i]) > 0 { // a late code from an earlier round
			<-codes[i]
		}
		body, _ := json.Marshal(map[string]string{"contactMethodId": cm[i]})
		start := time.Now()
		st, _, _, err := t.do(ctx, http.MethodPost, prefix+"/users/"+userID(i)+"/password/otp", body, t.auth)
		out, rec := judge(ctx, st, err, http.StatusAccepted)
		if !rec {
			return nil
		}
		at := r.add("otp-send", start, out)
		if out != ok {
			return nil
		}
		t.sink.expect(email(i), at)
		var code string
		select {
		case code = <-codes[i]:
		case <-time.After(30 * time.Second):
			r.add("otp-verify", time.Now(), fail)
			return nil
		case <-ctx.Done():
			return nil
		}
		body, _ = json.Marshal(map[string]string{"userId": userID(i), "otp": code})
		start = time.Now()
		st, _, _, err = t.do(ctx, http.MethodPost, prefix+"/password/otp/verify", body, public)
		if out, rec := judge(ctx, st, err, http.StatusOK); rec {
			r.add("otp-verify", start, out)
		}
		return nil
	}, nil
}

// won is a reset token and the index of its user.
type won struct {
	token string
	user  int
}

// harvest wins n reset tokens for users [lo, lo+n) the way a customer
// does: a reset link by email, read at the SMTP server.
func (t *target) harvest(ctx context.Context, lo, n int) (chan won, error) {
	t.cfg.progress("  winning %d reset tokens by email for users without history…", n)
	chans := make([]<-chan string, n)
	for k := range n {
		chans[k] = t.sink.want(email(lo + k))
	}
	t.sink.setCapture(linkRE)
	defer t.sink.setCapture(nil)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	body := []byte(`{"method":"email"}`)
	for range t.cfg.Concurrency {
		wg.Go(func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= n || ctx.Err() != nil {
					return
				}
				st, b, _, err := t.do(ctx, http.MethodPost, server.P+"/institutions/"+t.inst+"/users/"+userID(lo+k)+"/password/reset", body, t.auth)
				if err == nil && st != http.StatusOK {
					err = fmt.Errorf("status %d: %s", st, b)
				}
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, fmt.Errorf("harvesting tokens: %w", firstErr)
	}
	tokens := make(chan won, n)
	deadline := time.After(60 * time.Second)
	for k := range n {
		select {
		case tok := <-chans[k]:
			tokens <- won{tok, lo + k}
		case <-deadline:
			return nil, fmt.Errorf("harvesting tokens: %d of %d reset emails arrived within 60 s", k, n)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return tokens, nil
}

// changeFlow redeems tokens. A 503 keeps the token usable (the hash was
// refused before the token was spent), so it goes back to the pool; a
// patient client honours Retry-After, an overloading one does not.
func (t *target) changeFlow(tokens chan won, patient bool, stopped *atomic.Bool) iteration {
	total := int64(len(tokens))
	var spent atomic.Int64
	return func(ctx context.Context, _ int, r *recorder) error {
		var tok won
		select {
		case tok = <-tokens:
		default:
			if spent.Load() >= total {
				stopped.Store(true)
				return errStop
			}
			select { // another client holds the rest, or a 503 will return one
			case tok = <-tokens:
			case <-ctx.Done():
				return nil
			}
		}
		pw := make([]byte, 9)
		_, _ = rand.Read(pw)
		body, _ := json.Marshal(map[string]string{"token": tok.token, "newPassword": "bench " + hex.EncodeToString(pw)})
		start := time.Now()
		st, _, hdr, err := t.do(ctx, http.MethodPost, server.P+"/password/change", body, public)
		out, rec := judge(ctx, st, err, http.StatusNoContent)
		if !rec {
			tokens <- tok
			return nil
		}
		if st == http.StatusServiceUnavailable {
			tokens <- tok
			secs, aerr := strconv.Atoi(hdr.Get("Retry-After"))
			if aerr != nil || secs < 1 {
				r.add("change", start, fail) // 503 without Retry-After
				return nil
			}
			r.add("change", start, shed)
			if patient {
				select {
				case <-time.After(time.Duration(secs) * time.Second):
				case <-ctx.Done():
				}
			}
			return nil
		}
		spent.Add(1) // redeemed, or refused for good
		at := r.add("change", start, out)
		if out == ok {
			t.sink.expect(email(tok.user), at) // "your password was changed"
		}
		return nil
	}
}
