package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// testCA signs server certificates for 127.0.0.1.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// writeServer writes a server certificate with serial to certFile/keyFile
// (replacing them, as an operator's renewal does).
func (ca *testCA) writeServer(t *testing.T, serial int64, certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "resetd"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestTLSReloadOnSIGHUP runs the real binary with --tls-cert/--tls-key,
// replaces the files and sends SIGHUP: new connections get the new
// certificate while a connection opened before keeps working.
func TestTLSReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	bin := buildResetd(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := newTestCA(t)
	ca.writeServer(t, 100, certFile, keyFile)
	key := make([]byte, 32)
	rand.Read(key)
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile, "--metrics-addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), "RESETD_DB=sqlite:"+filepath.Join(dir, "resetd.db"), "RESETD_SECRET_KEY="+hex.EncodeToString(key))
	log := newWatched()
	cmd.Stdout, cmd.Stderr = io.Discard, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-done
		if t.Failed() {
			t.Logf("log:\n%s", log.String())
		}
	})
	base := "https://" + log.waitFor(t, listening)[1]

	client := func() *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}, Timeout: 10 * time.Second}
	}
	get := func(c *http.Client) (serial int64, reused bool) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/healthz", nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
			t.Fatalf("healthz: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), reused
	}
	old := client()
	if s, _ := get(old); s != 100 {
		t.Fatalf("first certificate: serial %d", s)
	}
	ca.writeServer(t, 200, certFile, keyFile)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, regexp.MustCompile(`TLS files reloaded`))
	if s, _ := get(client()); s != 200 {
		t.Errorf("a new connection after SIGHUP: serial %d, want 200", s)
	}
	if s, reused := get(old); !reused || s != 100 {
		t.Errorf("the connection opened before SIGHUP: reused %v, serial %d (want its own connection, still served)", reused, s)
	}
	// A broken file on the next SIGHUP keeps the certificate in use.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Process.Signal(syscall.SIGHUP)
	log.waitFor(t, regexp.MustCompile(`reloading TLS files; the old ones stay in use`))
	if s, _ := get(client()); s != 200 {
		t.Errorf("after a failed reload: serial %d, want 200", s)
	}
	// /metrics is on the management listener, not the customer-facing one.
	resp, err := client().Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("/metrics on the TLS listener: %d", resp.StatusCode)
	}
}

// TestClientCreateFAPIKinds: client create registers a private_key_jwt
// client from a JWK Set file and a tls_client_auth client by DN, neither
// with a secret; a private key in the file is refused.
func TestClientCreateFAPIKinds(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "fapi.db")
	key := make([]byte, 32)
	rand.Read(key)
	sk := hex.EncodeToString(key)
	cli := func(args ...string) (int, string) {
		code, out, errOut := runCLI(t, "", append(args, "--db", db, "--secret-key", sk)...)
		return code, out + errOut
	}
	if code, out := cli("institution", "put", "acme", "--name", "Acme Bank"); code != 0 {
		t.Fatal(out)
	}
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk := func(d bool) string {
		s := fmt.Sprintf(`{"kty":"EC","crv":"P-256","kid":"k1","x":%q,"y":%q`,
			base64.RawURLEncoding.EncodeToString(priv.X.FillBytes(make([]byte, 32))), base64.RawURLEncoding.EncodeToString(priv.Y.FillBytes(make([]byte, 32))))
		if d {
			s += fmt.Sprintf(`,"d":%q`, base64.RawURLEncoding.EncodeToString(priv.D.FillBytes(make([]byte, 32))))
		}
		return `{"keys":[` + s + `}]}`
	}
	pub, private := filepath.Join(dir, "jwks.json"), filepath.Join(dir, "private.json")
	os.WriteFile(pub, []byte(jwk(false)), 0o600)
	os.WriteFile(private, []byte(jwk(true)), 0o600)

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"private_key_jwt", []string{"--auth", "private_key_jwt", "--jwks-file", pub, "--require-dpop"}, "private_key_jwt"},
		{"tls_client_auth", []string{"--auth", "tls_client_auth", "--tls-subject", "CN=core-banking,O=Acme Bank,C=US"}, "tls_client_auth"},
	} {
		code, out := cli(append([]string{"client", "create", "--institution", "acme", "--scope", "institution-users:read"}, c.args...)...)
		var got map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &got) != nil {
			t.Fatalf("%s: exit %d: %s", c.name, code, out)
		}
		if _, has := got["client_secret"]; has || got["token_endpoint_auth_method"] != c.want || got["client_id"] == "" {
			t.Errorf("%s: printed %v", c.name, got)
		}
	}
	for name, args := range map[string][]string{
		"a private key":          {"--auth", "private_key_jwt", "--jwks-file", private},
		"no JWK Set":             {"--auth", "private_key_jwt"},
		"no subject":             {"--auth", "tls_client_auth"},
		"an unknown method":      {"--auth", "none"},
		"a missing JWK Set file": {"--auth", "private_key_jwt", "--jwks-file", filepath.Join(dir, "nope.json")},
	} {
		if code, out := cli(append([]string{"client", "create", "--institution", "acme", "--scope", "institution-users:read"}, args...)...); code == 0 {
			t.Errorf("%s: exit 0: %s", name, out)
		}
	}
}
