package password

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/resetd/resetd/internal/config"
)

// BreachList tells whether a password is known from breaches. An error
// means the list could not be asked; Check then lets the password through
// (a down list must not stop every reset).
type BreachList interface {
	Contains(ctx context.Context, pw string) (bool, error)
}

// RangeAPI is a breached-password list behind the k-anonymity range API
// (Have I Been Pwned's Pwned Passwords and its self-hosted mirrors):
// GET {base}/range/{first 5 hex digits of SHA-1}, answered by lines
// "SUFFIX:COUNT" holding the other 35 digits. Only those five digits leave
// resetd, so the service never learns the password.
type RangeAPI struct {
	base   string
	client *http.Client
	// unreachable is told of every failed look-up (a metric).
	unreachable func()
}

// rangeTimeout bounds one look-up: a slow list delays a password change
// by at most this much before the change proceeds without it.
const rangeTimeout = 3 * time.Second

// maxRangeBody bounds what a range answer may hold (real ones are ~30 KiB
// padded; a hostile or broken server must not fill memory).
const maxRangeBody = 4 << 20

// NewRangeAPI returns a RangeAPI at base (e.g. https://api.pwnedpasswords.com).
// client nil is a client with rangeTimeout; unreachable, when not nil, is
// called for each look-up that failed.
func NewRangeAPI(base string, client *http.Client, unreachable func()) *RangeAPI {
	if client == nil {
		client = &http.Client{Timeout: rangeTimeout}
	}
	if unreachable == nil {
		unreachable = func() {}
	}
	return &RangeAPI{base: config.BaseURL(base), client: client, unreachable: unreachable}
}

// Contains reports whether pw's SHA-1 is in the list.
func (r *RangeAPI) Contains(ctx context.Context, pw string) (bool, error) {
	found, err := r.lookup(ctx, pw)
	if err != nil && ctx.Err() == nil {
		r.unreachable()
	}
	return found, err
}

func (r *RangeAPI) lookup(ctx context.Context, pw string) (bool, error) {
	sum := sha1.Sum([]byte(pw))
	digest := strings.ToUpper(hex.EncodeToString(sum[:]))
	prefix, suffix := digest[:5], digest[5:]
	ctx, cancel := context.WithTimeout(ctx, rangeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/range/"+prefix, nil)
	if err != nil {
		return false, fmt.Errorf("password: breached list: %w", err)
	}
	// Padding makes every answer about the same size, so the size does
	// not tell an observer of the connection which prefix was asked.
	req.Header.Set("Add-Padding", "true")
	resp, err := r.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("password: breached list: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, maxRangeBody))
		return false, fmt.Errorf("password: breached list answered %s", resp.Status)
	}
	body := io.LimitReader(resp.Body, maxRangeBody+1)
	var read int64
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		read += int64(len(line)) + 1
		got, count, ok := strings.Cut(strings.TrimSpace(line), ":")
		// A padding line has count 0: it is not a breached password.
		if ok && strings.EqualFold(got, suffix) && strings.TrimLeft(count, "0") != "" {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("password: breached list: %w", err)
	}
	if read > maxRangeBody {
		return false, errors.New("password: breached list answer too large")
	}
	return false, nil
}
