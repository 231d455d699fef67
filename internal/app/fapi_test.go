package app_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/resetd/resetd/internal/app"
	"github.com/resetd/resetd/internal/auth"
)

// pki is a test CA with a server certificate for 127.0.0.1 and client
// certificates on demand, all made here with crypto/x509.
type pki struct {
	t        *testing.T
	dir      string
	ca       *x509.Certificate
	caKey    crypto.Signer
	roots    *x509.CertPool
	certFile string
	keyFile  string
	caFile   string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{t: t, dir: t.TempDir(), roots: x509.NewCertPool()}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "resetd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	p.ca, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.roots.AddCert(p.ca)
	p.caFile = p.write("ca.pem", "CERTIFICATE", der)
	p.certFile, p.keyFile = p.serverFiles("server", "resetd server")
	return p
}

func (p *pki) write(name, typ string, der []byte) string {
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

var serial int64 = 10

func (p *pki) issue(subject pkix.Name, server bool) (der []byte, key *ecdsa.PrivateKey) {
	key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: subject,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, key.Public(), p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	return der, key
}

// serverFiles writes a server certificate and key named name(-key).pem.
func (p *pki) serverFiles(name, cn string) (certFile, keyFile string) {
	der, key := p.issue(pkix.Name{CommonName: cn}, true)
	kder, _ := x509.MarshalECPrivateKey(key)
	return p.write(name+".pem", "CERTIFICATE", der), p.write(name+"-key.pem", "EC PRIVATE KEY", kder)
}

// client makes a client certificate and returns it with its subject DN
// as resetd compares it.
func (p *pki) client(cn string) (tls.Certificate, string) {
	subject := pkix.Name{CommonName: cn, Organization: []string{"Acme Bank"}, Country: []string{"US"}}
	der, key := p.issue(subject, false)
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf.Subject.String()
}

// httpsClient trusts the test CA and presents cert when given.
func (p *pki) httpsClient(cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: p.roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}, Timeout: 10 * time.Second}
}

// fapi is a harness serving HTTPS with client certificates.
type fapi struct {
	*harness
	pki  *pki
	base string
}

func newFAPI(t *testing.T, configure ...func(*app.Config)) *fapi {
	t.Helper()
	p := newPKI(t)
	h := newHarness(t, append([]func(*app.Config){func(c *app.Config) {
		c.TLSCert, c.TLSKey, c.ClientCA = p.certFile, p.keyFile, p.caFile
	}}, configure...)...)
	return &fapi{harness: h, pki: p, base: h.app.PublicURL()}
}

func (f *fapi) tokenURL() string { return f.base + "/a/oidc-provider/api/v0/token" }

type call struct {
	status int
	header http.Header
	body   map[string]any
}

func (f *fapi) send(c *http.Client, req *http.Request) call {
	f.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return call{status: resp.StatusCode, header: resp.Header, body: m}
}

// token posts a token request with form and extra headers (pairs).
func (f *fapi) token(c *http.Client, form url.Values, hdr ...string) call {
	f.t.Helper()
	form.Set("grant_type", "client_credentials")
	req, _ := http.NewRequest("POST", f.tokenURL(), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return f.send(c, req)
}

// settings reads acme's settings with an Authorization header and extra
// headers (pairs).
func (f *fapi) settings(c *http.Client, authz string, hdr ...string) call {
	f.t.Helper()
	req, _ := http.NewRequest("GET", f.settingsURL(), nil)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return f.send(c, req)
}

func (f *fapi) settingsURL() string {
	return f.base + "/a/password-reset/api/v0/institutions/acme/settings"
}

func jwksOf(t *testing.T, keys ...jose.JSONWebKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func signJWT(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims any, extra ...map[jose.HeaderKey]any) string {
	t.Helper()
	opts := &jose.SignerOptions{}
	for _, e := range extra {
		for k, v := range e {
			opts.WithHeader(k, v)
		}
	}
	sk := jose.SigningKey{Algorithm: alg, Key: key}
	if kid != "" {
		sk.Key = jose.JSONWebKey{Key: key, KeyID: kid}
	}
	s, err := jose.NewSigner(sk, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertionClaims(id, aud string, iat time.Time, life time.Duration) jwt.Claims {
	return jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{aud}, IssuedAt: jwt.NewNumericDate(iat),
		Expiry: jwt.NewNumericDate(iat.Add(life)), ID: base64.RawURLEncoding.EncodeToString(randBytes(12))}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

func assertionForm(a string) url.Values {
	return url.Values{"client_assertion_type": {auth.AssertionType}, "client_assertion": {a}}
}

// TestPrivateKeyJWT: ES256, PS256 and EdDSA assertions get tokens over
// TLS; every way an attacker bends an assertion gets invalid_client, and
// a replay is refused by another replica too.
func TestPrivateKeyJWT(t *testing.T) {
	t.Parallel()
	f := newFAPI(t)
	ctx := context.Background()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	type kc struct {
		name string
		alg  jose.SignatureAlgorithm
		priv any
		pub  any
	}
	keys := []kc{{"ES256", jose.ES256, ecKey, &ecKey.PublicKey}, {"PS256", jose.PS256, rsaKey, &rsaKey.PublicKey}, {"EdDSA", jose.EdDSA, edKey, edKey.Public()}}
	ids := map[string]string{}
	c := f.pki.httpsClient(nil)
	for _, k := range keys {
		id, sec, err := f.app.Auth.CreateClientSpec(ctx, auth.ClientSpec{InstitutionID: "acme", Scopes: auth.AllScopes,
			AuthMethod: auth.MethodPrivateKeyJWT, JWKS: jwksOf(t, jose.JSONWebKey{Key: k.pub, KeyID: "k1", Use: "sig"})})
		if err != nil || sec != "" {
			t.Fatalf("%s client: %v, secret %q", k.name, err, sec)
		}
		ids[k.name] = id
		// aud may be the token endpoint or the issuer.
		for _, aud := range []string{f.tokenURL(), f.base} {
			r := f.token(c, assertionForm(signJWT(t, k.alg, k.priv, "k1", assertionClaims(id, aud, time.Now(), time.Minute))))
			if r.status != 200 || r.body["token_type"] != "Bearer" {
				t.Fatalf("%s assertion (aud %s): %d %v", k.name, aud, r.status, r.body)
			}
			if s := f.settings(c, "Bearer "+r.body["access_token"].(string)); s.status != 200 {
				t.Fatalf("%s token on the API: %d %v", k.name, s.status, s.body)
			}
		}
	}
	id := ids["PS256"]
	now := time.Now()
	hsKey := randBytes(32)
	replayed := signJWT(t, jose.PS256, rsaKey, "k1", assertionClaims(id, f.tokenURL(), now, time.Minute))
	if r := f.token(c, assertionForm(replayed)); r.status != 200 {
		t.Fatalf("first use: %d %v", r.status, r.body)
	}
	attacks := []struct {
		name string
		form url.Values
	}{
		{"replayed assertion", assertionForm(replayed)},
		{"wrong aud", assertionForm(signJWT(t, jose.PS256, rsaKey, "k1", assertionClaims(id, "https://elsewhere.example/token", now, time.Minute)))},
		{"RS256 by the registered key", assertionForm(signJWT(t, jose.RS256, rsaKey, "k1", assertionClaims(id, f.tokenURL(), now, time.Minute)))},
		{"HS256", assertionForm(signJWT(t, jose.HS256, hsKey, "k1", assertionClaims(id, f.tokenURL(), now, time.Minute)))},
		{"expired", assertionForm(signJWT(t, jose.PS256, rsaKey, "k1", assertionClaims(id, f.tokenURL(), now.Add(-10*time.Minute), 2*time.Minute)))},
		{"life over five minutes", assertionForm(signJWT(t, jose.PS256, rsaKey, "k1", assertionClaims(id, f.tokenURL(), now, 10*time.Minute)))},
		{"another client's key", assertionForm(signJWT(t, jose.ES256, ecKey, "k1", assertionClaims(id, f.tokenURL(), now, time.Minute)))},
		{"sub is not iss", assertionForm(signJWT(t, jose.PS256, rsaKey, "k1", func() jwt.Claims {
			c := assertionClaims(id, f.tokenURL(), now, time.Minute)
			c.Subject = ids["ES256"]
			return c
		}()))},
		{"no jti", assertionForm(signJWT(t, jose.PS256, rsaKey, "k1", func() jwt.Claims {
			c := assertionClaims(id, f.tokenURL(), now, time.Minute)
			c.ID = ""
			return c
		}()))},
		{"client_id of another client", func() url.Values {
			v := assertionForm(signJWT(t, jose.PS256, rsaKey, "k1", assertionClaims(id, f.tokenURL(), now, time.Minute)))
			v.Set("client_id", ids["ES256"])
			return v
		}()},
		{"assertion for a secret client", assertionForm(signJWT(t, jose.PS256, rsaKey, "k1", assertionClaims(f.adminID, f.tokenURL(), now, time.Minute)))},
		{"unsigned", assertionForm(strings.Join([]string{b64(`{"alg":"none"}`), b64(`{"iss":"` + id + `"}`), ""}, "."))},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			if r := f.token(c, a.form); r.status != 401 || r.body["error"] != "invalid_client" {
				t.Errorf("%d %v, want 401 invalid_client", r.status, r.body)
			}
		})
	}
	// A secret where the client has none.
	form := url.Values{"client_id": {id}, "client_secret": {""}}
	if r := f.token(c, form); r.status != 401 {
		t.Errorf("empty secret for a key client: %d %v", r.status, r.body)
	}

	// Another replica on the same database refuses the replay too.
	fresh := signJWT(t, jose.ES256, ecKey, "k1", assertionClaims(ids["ES256"], f.tokenURL(), time.Now(), time.Minute))
	if r := f.token(c, assertionForm(fresh)); r.status != 200 {
		t.Fatalf("fresh assertion: %d %v", r.status, r.body)
	}
	replica := f.replica(t)
	r := f.send(c, func() *http.Request {
		v := assertionForm(fresh)
		v.Set("grant_type", "client_credentials")
		req, _ := http.NewRequest("POST", replica+"/a/oidc-provider/api/v0/token", strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}())
	if r.status != 401 || r.body["error"] != "invalid_client" {
		t.Errorf("replay on another replica: %d %v", r.status, r.body)
	}
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// replica starts a second resetd on the harness's database, with the same
// TLS files and issuer, and returns its base URL.
func (f *fapi) replica(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	a, err := app.Open(ctx, app.Config{SMTP: f.mail.URL("noreply@resetd.example"), Addr: ln.Addr().String(), DB: harnessDB(t, f.dbPath), PublicURL: f.base, NoMigrate: true,
		TLSCert: f.pki.certFile, TLSKey: f.pki.keyFile, ClientCA: f.pki.caFile, Argon2: &cheapArgon2,
		SecretKey: f.secretKey, Server: true})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		a.Close()
	})
	return "https://" + ln.Addr().String()
}

// dpopKey makes DPoP proofs with one P-256 key.
type dpopKey struct {
	t   *testing.T
	key *ecdsa.PrivateKey
}

func newDPoPKey(t *testing.T) *dpopKey {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	return &dpopKey{t: t, key: k}
}

// proof makes a proof for method and URL, with ath of token when given.
func (d *dpopKey) proof(method, u, token string, iat time.Time) string {
	claims := map[string]any{"jti": base64.RawURLEncoding.EncodeToString(randBytes(12)), "htm": method, "htu": u, "iat": iat.Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	opts := (&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt")
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: d.key}, opts)
	if err != nil {
		d.t.Fatal(err)
	}
	out, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// TestDPoP: a token request with a proof gets a DPoP token bound to the
// key; it works with fresh proofs only, and is refused with a replayed
// proof, a proof for another URL, method or token, another key's proof,
// a stale proof, or as a Bearer token — with WWW-Authenticate: DPoP.
func TestDPoP(t *testing.T) {
	t.Parallel()
	f := newFAPI(t)
	c := f.pki.httpsClient(nil)
	k := newDPoPKey(t)
	basic := func(form url.Values) url.Values {
		form.Set("client_id", f.adminID)
		form.Set("client_secret", f.adminSecret)
		return form
	}
	r := f.token(c, basic(url.Values{}), "DPoP", k.proof("POST", f.tokenURL(), "", time.Now()))
	if r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Fatalf("token with a proof: %d %v", r.status, r.body)
	}
	tok := r.body["access_token"].(string)
	for i := range 2 { // a fresh proof each time works, again and again
		if s := f.settings(c, "DPoP "+tok, "DPoP", k.proof("GET", f.settingsURL(), tok, time.Now())); s.status != 200 {
			t.Fatalf("request %d with a fresh proof: %d %v", i, s.status, s.body)
		}
	}
	replayed := k.proof("GET", f.settingsURL(), tok, time.Now())
	if s := f.settings(c, "DPoP "+tok, "DPoP", replayed); s.status != 200 {
		t.Fatalf("first use of the proof: %d", s.status)
	}
	other := newDPoPKey(t)
	for _, a := range []struct {
		name, authz, proof string
	}{
		{"replayed proof", "DPoP " + tok, replayed},
		{"wrong htu", "DPoP " + tok, k.proof("GET", f.base+"/a/password-reset/api/v0/institutions/other/settings", tok, time.Now())},
		{"wrong htm", "DPoP " + tok, k.proof("POST", f.settingsURL(), tok, time.Now())},
		{"wrong ath", "DPoP " + tok, k.proof("GET", f.settingsURL(), tok+"x", time.Now())},
		{"no ath", "DPoP " + tok, k.proof("GET", f.settingsURL(), "", time.Now())},
		{"stale iat", "DPoP " + tok, k.proof("GET", f.settingsURL(), tok, time.Now().Add(-2*time.Minute))},
		{"future iat", "DPoP " + tok, k.proof("GET", f.settingsURL(), tok, time.Now().Add(2*time.Minute))},
		{"another key", "DPoP " + tok, other.proof("GET", f.settingsURL(), tok, time.Now())},
		{"no proof", "DPoP " + tok, ""},
		{"as a bearer token", "Bearer " + tok, ""},
		{"as a bearer token with a proof", "Bearer " + tok, k.proof("GET", f.settingsURL(), tok, time.Now())},
	} {
		t.Run(a.name, func(t *testing.T) {
			var hdr []string
			if a.proof != "" {
				hdr = []string{"DPoP", a.proof}
			}
			s := f.settings(c, a.authz, hdr...)
			if s.status != 401 || !strings.Contains(s.header.Get("WWW-Authenticate"), `DPoP algs=`) ||
				!strings.Contains(s.header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
				t.Errorf("%d %q %v", s.status, s.header.Values("WWW-Authenticate"), s.body)
			}
		})
	}
	// The path next door: HEAD beside GET needs a proof for HEAD, and
	// another route refuses the token as Bearer as well.
	head := func(htm string) int {
		req, _ := http.NewRequest("HEAD", f.settingsURL(), nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", k.proof(htm, f.settingsURL(), tok, time.Now()))
		return f.send(c, req).status
	}
	if st := head("GET"); st != 401 {
		t.Errorf("HEAD with a proof made for GET: %d", st)
	}
	if st := head("HEAD"); st != 200 {
		t.Errorf("HEAD with a proof for HEAD: %d", st)
	}
	users, _ := http.NewRequest("GET", f.base+"/a/password-reset/api/v0/institutions/acme/users?username=x", nil)
	users.Header.Set("Authorization", "Bearer "+tok)
	if st := f.send(c, users).status; st != 401 {
		t.Errorf("the DPoP token as Bearer on another route: %d", st)
	}

	// A plain token presented with the DPoP scheme is refused too.
	plain := f.token(c, basic(url.Values{}))
	if plain.status != 200 || plain.body["token_type"] != "Bearer" {
		t.Fatalf("plain token: %d %v", plain.status, plain.body)
	}
	pt := plain.body["access_token"].(string)
	if s := f.settings(c, "DPoP "+pt, "DPoP", k.proof("GET", f.settingsURL(), pt, time.Now())); s.status != 401 {
		t.Errorf("a bearer token as DPoP: %d", s.status)
	}

	// At the token endpoint: a replayed, misdirected or malformed proof is
	// invalid_dpop_proof.
	tp := k.proof("POST", f.tokenURL(), "", time.Now())
	if r := f.token(c, basic(url.Values{}), "DPoP", tp); r.status != 200 {
		t.Fatalf("token proof first use: %d %v", r.status, r.body)
	}
	for name, p := range map[string]string{
		"replayed":  tp,
		"wrong htu": k.proof("POST", f.base+"/elsewhere", "", time.Now()),
		"wrong htm": k.proof("GET", f.tokenURL(), "", time.Now()),
		"not a JWT": "garbage",
		"HS256":     signJWT(t, jose.HS256, randBytes(32), "", map[string]any{"jti": "x", "htm": "POST", "htu": f.tokenURL(), "iat": time.Now().Unix()}, map[jose.HeaderKey]any{"typ": "dpop+jwt"}),
		"wrong typ": signJWT(t, jose.ES256, k.key, "", map[string]any{"jti": "y", "htm": "POST", "htu": f.tokenURL(), "iat": time.Now().Unix()}),
		"stale":     k.proof("POST", f.tokenURL(), "", time.Now().Add(-5*time.Minute)),
	} {
		if r := f.token(c, basic(url.Values{}), "DPoP", p); r.status != 400 || r.body["error"] != "invalid_dpop_proof" {
			t.Errorf("token endpoint, %s proof: %d %v", name, r.status, r.body)
		}
	}

	// --require-dpop: such a client gets no bearer token.
	ctx := context.Background()
	id, sec, err := f.app.Auth.CreateClientSpec(ctx, auth.ClientSpec{InstitutionID: "acme", Scopes: auth.AllScopes, RequireDPoP: true})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.token(c, url.Values{"client_id": {id}, "client_secret": {sec}}); r.status != 400 || r.body["error"] != "invalid_dpop_proof" {
		t.Errorf("require-dpop client without a proof: %d %v", r.status, r.body)
	}
	if r := f.token(c, url.Values{"client_id": {id}, "client_secret": {sec}}, "DPoP", k.proof("POST", f.tokenURL(), "", time.Now())); r.status != 200 || r.body["token_type"] != "DPoP" {
		t.Errorf("require-dpop client with a proof: %d %v", r.status, r.body)
	}
}

// TestTLSClientAuth: a tls_client_auth client authenticates by its
// certificate and gets a token bound to it (cnf.x5t#S256); the token works
// on a connection with that certificate only.
func TestTLSClientAuth(t *testing.T) {
	t.Parallel()
	f := newFAPI(t)
	ctx := context.Background()
	certA, dnA := f.pki.client("bank-a")
	certB, _ := f.pki.client("bank-b")
	id, sec, err := f.app.Auth.CreateClientSpec(ctx, auth.ClientSpec{InstitutionID: "acme", Scopes: auth.AllScopes, AuthMethod: auth.MethodTLSClientAuth, TLSSubject: dnA})
	if err != nil || sec != "" {
		t.Fatalf("create: %v %q", err, sec)
	}
	withA, withB, without := f.pki.httpsClient(&certA), f.pki.httpsClient(&certB), f.pki.httpsClient(nil)
	r := f.token(withA, url.Values{"client_id": {id}})
	if r.status != 200 || r.body["token_type"] != "Bearer" {
		t.Fatalf("token with the certificate: %d %v", r.status, r.body)
	}
	tok := r.body["access_token"].(string)
	var cnf struct {
		Cnf map[string]string `json:"cnf"`
	}
	parsed, _ := jwt.ParseSigned(tok, []jose.SignatureAlgorithm{jose.EdDSA})
	_ = parsed.UnsafeClaimsWithoutVerification(&cnf)
	sum := sha256.Sum256(certA.Leaf.Raw)
	if cnf.Cnf["x5t#S256"] != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Errorf("cnf = %v", cnf.Cnf)
	}
	if s := f.settings(withA, "Bearer "+tok); s.status != 200 {
		t.Errorf("with its certificate: %d %v", s.status, s.body)
	}
	if s := f.settings(without, "Bearer "+tok); s.status != 401 {
		t.Errorf("without a certificate: %d", s.status)
	}
	if s := f.settings(withB, "Bearer "+tok); s.status != 401 {
		t.Errorf("with another certificate: %d", s.status)
	}
	users, _ := http.NewRequest("GET", f.base+"/a/password-reset/api/v0/institutions/acme/users?username=x", nil)
	users.Header.Set("Authorization", "Bearer "+tok)
	if st := f.send(without, users).status; st != 401 {
		t.Errorf("the bound token on another route without the certificate: %d", st)
	}
	for name, c := range map[string]*http.Client{"another certificate": withB, "no certificate": without} {
		if r := f.token(c, url.Values{"client_id": {id}}); r.status != 401 || r.body["error"] != "invalid_client" {
			t.Errorf("token with %s: %d %v", name, r.status, r.body)
		}
	}
	// A certificate from another CA does not get past the handshake.
	stranger := newPKI(t)
	certX, _ := stranger.client("bank-a")
	if _, err := f.pki.httpsClient(&certX).Get(f.base + "/healthz"); err == nil {
		t.Error("a certificate from an unknown CA was accepted")
	}
	// A secret client keeps working over mTLS, and its token is not bound.
	if r := f.token(withB, url.Values{"client_id": {f.adminID}, "client_secret": {f.adminSecret}}); r.status != 200 {
		t.Errorf("secret client over mTLS: %d %v", r.status, r.body)
	} else if s := f.settings(without, "Bearer "+r.body["access_token"].(string)); s.status != 200 {
		t.Errorf("secret client's token without a certificate: %d", s.status)
	}
}
