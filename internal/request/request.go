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
// proxies, the rightmost address that is not itself trusted in
// X-Forwarded-For, or without one in the RFC 7239 Forwarded header.
// Entries may carry ports ("192.0.2.7:4711", "[2001:db8::1]:4711").
func PeerIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(trusted, peer) {
		return host
	}
	// X-Forwarded-For first: most proxies set it and pass a client's own
	// Forwarded header through untouched, so preferring Forwarded would let
	// a client name its address. Forwarded counts only without XFF.
	var hops []string
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		hops = strings.Split(strings.Join(xff, ","), ",")
	} else {
		hops = forwardedFor(r.Header.Values("Forwarded"))
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, ok := hopAddr(hops[i])
		if !ok {
			break
		}
		if !isTrusted(trusted, a) {
			return a.Unmap().String()
		}
	}
	return host
}

// forwardedFor returns the for= values of RFC 7239 Forwarded headers, in
// order (hops are comma-separated, parameters semicolon-separated).
func forwardedFor(values []string) []string {
	var out []string
	for _, v := range values {
		for _, elem := range strings.Split(v, ",") {
			for _, pair := range strings.Split(elem, ";") {
				k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(k, "for") {
					out = append(out, strings.Trim(val, `"`))
				}
			}
		}
	}
	return out
}

// hopAddr parses one forwarded hop: an address, with or without a port,
// IPv6 in brackets or bare.
func hopAddr(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a, true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr(), true
	}
	if h, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(h); err == nil {
			return a, true
		}
	}
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		if a, err := netip.ParseAddr(s[1 : len(s)-1]); err == nil {
			return a, true
		}
	}
	return netip.Addr{}, false
}

// Bucket is the key per-IP limits count an address under: an IPv4
// address itself, an IPv6 address by its /64 (one customer's network is
// usually a /64, and each of its 2^64 addresses must not get a budget of
// its own). Anything that does not parse is its own bucket.
func Bucket(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a.WithZone(""), 64).Masked().String()
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
