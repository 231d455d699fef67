package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// WebhookPolicy decides where webhooks may go (SPEC §11): https only, to
// public addresses only, unless the operator allowed a range with
// --webhook-allow (plain http only to such a range). The same check runs
// when a webhookUrl is set and on every connection, where the dialer sees
// the address the name resolved to, so a name rebound to an inside address
// after the PUT still cannot be reached.
type WebhookPolicy struct {
	// Allow are ranges a webhook may reach although they are inside.
	Allow []netip.Prefix
	// RootCAs verify receivers; nil is the system's roots (SSL_CERT_FILE).
	RootCAs *x509.CertPool
	// Resolver looks names up at PUT; nil is net.DefaultResolver.
	Resolver *net.Resolver
}

// ErrWebhookAddress is a webhook address the policy refuses.
var ErrWebhookAddress = errors.New("delivery: webhook address refused")

// insideRanges are the addresses a tenant's receiver may not be at: loopback,
// RFC 1918, CGNAT, link-local, ULA, multicast, unspecified, and the
// documentation, benchmarking and reserved ranges that are never a
// legitimate receiver either.
var insideRanges = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "fc00::/7", "fe80::/10", "ff00::/8", "2001:db8::/32", "100::/64",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// allowed reports whether the operator allowed ip.
func (p *WebhookPolicy) allowed(ip netip.Addr) bool {
	for _, a := range p.Allow {
		if a.Contains(ip) {
			return true
		}
	}
	return false
}

// checkAddr refuses an inside address that is not allowed; with plain set
// (http://) only an allowed address passes.
func (p *WebhookPolicy) checkAddr(ip netip.Addr, plain bool) error {
	ip = ip.Unmap()
	if p.allowed(ip) {
		return nil
	}
	if plain {
		return fmt.Errorf("%w: %s: plain http only to an address in --webhook-allow", ErrWebhookAddress, ip)
	}
	check := []netip.Addr{ip}
	// NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address.
	if b := ip.As16(); ip.Is6() && b[0] == 0 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b {
		check = append(check, netip.AddrFrom4([4]byte(b[12:16])))
	} else if ip.Is6() && b[0] == 0x20 && b[1] == 0x02 {
		check = append(check, netip.AddrFrom4([4]byte(b[2:6])))
	}
	for _, a := range check {
		for _, r := range insideRanges {
			if r.Contains(a) {
				return fmt.Errorf("%w: %s is an inside address (%s); an operator may allow it with --webhook-allow", ErrWebhookAddress, ip, r)
			}
		}
	}
	return nil
}

// CheckURL refuses a webhookUrl that is not https (or http to an allowed
// address), or whose host is or resolves to a refused address. A name that
// does not resolve now is let through: every connection is checked again.
func (p *WebhookPolicy) CheckURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("%w: %q is not an absolute URL", ErrWebhookAddress, raw)
	}
	plain := false
	switch u.Scheme {
	case "https":
	case "http":
		plain = true
	default:
		return fmt.Errorf("%w: %q must use https", ErrWebhookAddress, raw)
	}
	host := u.Hostname()
	if ip, err := netip.ParseAddr(host); err == nil {
		return p.checkAddr(ip, plain)
	}
	// RFC 6761: localhost names are loopback, whatever a resolver says.
	if n := strings.ToLower(strings.TrimSuffix(host, ".")); n == "localhost" || strings.HasSuffix(n, ".localhost") {
		if err := p.checkAddr(netip.MustParseAddr("127.0.0.1"), plain); err != nil {
			return fmt.Errorf("%s is %w", host, err)
		}
	}
	r := p.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		if plain {
			return fmt.Errorf("%w: %s does not resolve; plain http only to an address in --webhook-allow", ErrWebhookAddress, host)
		}
		return nil
	}
	for _, a := range addrs {
		if err := p.checkAddr(a, plain); err != nil {
			return fmt.Errorf("%s resolves to %w", host, err)
		}
	}
	return nil
}

// control is the dialer's hook: it sees the resolved address of every
// connection attempt, after DNS, before connecting.
func (p *WebhookPolicy) control(plain bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s", ErrWebhookAddress, address)
		}
		return p.checkAddr(ap.Addr(), plain)
	}
}

// Client is the HTTP client webhooks go out on: every dial checked, no
// proxy (it would dial for us), no redirect followed (a 3xx is the answer,
// and a failed attempt), one attempt bounded by timeout.
func (p *WebhookPolicy) Client(timeout time.Duration) *http.Client {
	dialer := func(plain bool) *net.Dialer {
		return &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, Control: p.control(plain)}
	}
	tlsDialer := &tls.Dialer{NetDialer: dialer(false), Config: &tls.Config{RootCAs: p.RootCAs, MinVersion: tls.VersionTLS12}}
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer(true).DialContext, // http:// only
			DialTLSContext:        tlsDialer.DialContext,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   5 * time.Second,
			ResponseHeaderTimeout: timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ParseAllow reads --webhook-allow values: CIDRs or single addresses.
func ParseAllow(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		if pfx, err := netip.ParsePrefix(v); err == nil {
			out = append(out, pfx.Masked())
			continue
		}
		ip, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("delivery: --webhook-allow %q is not a CIDR or an address", v)
		}
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}
