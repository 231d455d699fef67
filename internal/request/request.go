// Package request owns what resetd knows about one HTTP request beyond the
// request itself: the transaction id and client IP the server's middleware
// settles (honouring trusted proxies), and the API client once the auth
// check learns it. The middleware fills it in, the API and the reset page
// read it, and its log handler stamps the transaction id on every log line
// written during the request. It also holds the Retry-After rule both the
// API and the page answer with.
package request

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

type ctxKey struct{}

// info is what the context carries. The client id is learned after
// routing (by the auth check), so the context holds a pointer the
// middleware's access log can read afterwards.
type info struct {
	transactionID string
	clientIP      string
	clientID      string
}

// With returns ctx carrying a request's transaction id and client IP.
func With(ctx context.Context, transactionID, clientIP string) context.Context {
	return context.WithValue(ctx, ctxKey{}, &info{transactionID: transactionID, clientIP: clientIP})
}

func from(ctx context.Context) *info {
	if v, ok := ctx.Value(ctxKey{}).(*info); ok {
		return v
	}
	return &info{}
}

// TransactionID is the request's transaction id, "" outside a request.
func TransactionID(ctx context.Context) string { return from(ctx).transactionID }

// ClientIP is the request's client address, "" outside a request.
func ClientIP(ctx context.Context) string { return from(ctx).clientIP }

// ClientID is the API client the auth check identified, "" if none.
func ClientID(ctx context.Context) string { return from(ctx).clientID }

// SetClientID records the API client the auth check identified. The
// request's handlers and its middleware run on one goroutine.
func SetClientID(ctx context.Context, id string) {
	if v, ok := ctx.Value(ctxKey{}).(*info); ok {
		v.clientID = id
	}
}

// PeerIP is the TCP peer of r, or, when the peer is one of the trusted
// proxies, the rightmost address in X-Forwarded-For that is not itself
// trusted.
func PeerIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(trusted, peer) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		if !isTrusted(trusted, a) {
			return a.Unmap().String()
		}
	}
	return host
}

func isTrusted(trusted []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// RetryAfter sets the Retry-After header to d in whole seconds, rounded
// up and at least 1 (a client told 0 would retry at once).
func RetryAfter(w http.ResponseWriter, d time.Duration) {
	secs := int((d + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
}
