package request

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestContextCarriesTheRequest(t *testing.T) {
	t.Parallel()
	ctx := With(context.Background(), "tid-1", "192.0.2.7")
	SetClientID(ctx, "client-a")
	if TransactionID(ctx) != "tid-1" || ClientIP(ctx) != "192.0.2.7" || ClientID(ctx) != "client-a" {
		t.Errorf("got %q %q %q", TransactionID(ctx), ClientIP(ctx), ClientID(ctx))
	}
	bare := context.Background()
	SetClientID(bare, "ignored")
	if TransactionID(bare) != "" || ClientIP(bare) != "" || ClientID(bare) != "" {
		t.Error("a context outside a request carries request values")
	}
}

func TestLoggerStampsTheTransactionID(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := Logger(Logger(slog.New(slog.NewJSONHandler(&buf, nil)))).With("part", "web")
	l.InfoContext(With(context.Background(), "tid-2", ""), "in a request")
	l.InfoContext(context.Background(), "outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %s", len(lines), buf.String())
	}
	if strings.Count(lines[0], `"transaction_id":"tid-2"`) != 1 || !strings.Contains(lines[0], `"part":"web"`) {
		t.Errorf("request line: %s", lines[0])
	}
	if strings.Contains(lines[1], "transaction_id") {
		t.Errorf("line outside a request: %s", lines[1])
	}
}

func TestPeerIP(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}
	for _, c := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "198.51.100.4:5555", nil, "198.51.100.4"},
		{"untrusted peer's header ignored", "198.51.100.4:5555", []string{"203.0.113.9"}, "198.51.100.4"},
		{"trusted proxy", "10.1.2.3:80", []string{"203.0.113.9"}, "203.0.113.9"},
		{"rightmost untrusted hop", "10.1.2.3:80", []string{"203.0.113.9, 198.51.100.1", "10.9.9.9"}, "198.51.100.1"},
		{"only trusted hops", "10.1.2.3:80", []string{"10.9.9.9"}, "10.1.2.3"},
		{"garbage hop stops the walk", "10.1.2.3:80", []string{"203.0.113.9, junk"}, "10.1.2.3"},
		{"mapped IPv4", "[::ffff:192.0.2.1]:80", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"no port", "198.51.100.4", nil, "198.51.100.4"},
		{"XFF entry with a port", "10.1.2.3:80", []string{"203.0.113.9:4711"}, "203.0.113.9"},
		{"XFF IPv6 entry with a port", "10.1.2.3:80", []string{"[2001:db8::1]:4711"}, "2001:db8::1"},
		{"XFF bracketed IPv6 without a port", "10.1.2.3:80", []string{"[2001:db8::2]"}, "2001:db8::2"},
		{"XFF trusted hop with a port skipped", "10.1.2.3:80", []string{"203.0.113.9:1, 10.9.9.9:2"}, "203.0.113.9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := PeerIP(r, trusted); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestPeerIPForwarded(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		name, remote string
		fwd, xff     []string
		want         string
	}{
		{"for with a port", "10.1.2.3:80", []string{"for=192.0.2.43:47011"}, nil, "192.0.2.43"},
		{"quoted IPv6 with a port", "10.1.2.3:80", []string{`for="[2001:db8:cafe::17]:4711"`}, nil, "2001:db8:cafe::17"},
		{"several hops and parameters", "10.1.2.3:80", []string{"for=198.51.100.17;proto=https, for=192.0.2.60;by=10.0.0.1", "for=10.2.2.2"}, nil, "192.0.2.60"},
		// A proxy that sets X-Forwarded-For passes a client's own Forwarded
		// through: that header must not name the client's address.
		{"X-Forwarded-For wins over a Forwarded the client sent", "10.1.2.3:80", []string{"for=192.0.2.43"}, []string{"203.0.113.9"}, "203.0.113.9"},
		{"obfuscated identifier stops the walk", "10.1.2.3:80", []string{"for=_hidden"}, nil, "10.1.2.3"},
		{"untrusted peer's header ignored", "198.51.100.4:1", []string{"for=192.0.2.43"}, nil, "198.51.100.4"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			for _, v := range c.fwd {
				r.Header.Add("Forwarded", v)
			}
			for _, v := range c.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := PeerIP(r, trusted); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestBucketKeysIPv6ByItsSlash64(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
		{"192.0.2.1", "192.0.2.2", false},
		{"::ffff:192.0.2.1", "192.0.2.1", true},
		{"fe80::1%eth0", "fe80::2", true},
	} {
		if got := Bucket(c.a) == Bucket(c.b); got != c.same {
			t.Errorf("Bucket(%q)=%q, Bucket(%q)=%q: same=%v, want %v", c.a, Bucket(c.a), c.b, Bucket(c.b), got, c.same)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{0: "1", time.Millisecond: "1", time.Second: "1", 1500 * time.Millisecond: "2", 90 * time.Second: "90"} {
		w := httptest.NewRecorder()
		RetryAfter(w, d)
		if got := w.Header().Get("Retry-After"); got != want {
			t.Errorf("%v: %q, want %q", d, got, want)
		}
	}
}
