package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestRunSmall runs the real thing, small: an in-process server, the SMTP
// server, seeding through the import path, and the flows that need no
// argon2id (those take seconds per hash batch), with a table at the end.
func TestRunSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and loads it")
	}
	rep, err := Run(t.Context(), Config{
		Users: 300, Concurrency: 4, Duration: 300 * time.Millisecond, LimitDuration: 100 * time.Millisecond,
		Flows: []string{FlowToken, FlowSendReset, FlowOTP, FlowSelfService},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Flows) != 4 {
		t.Fatalf("%d flows", len(rep.Flows))
	}
	for _, f := range rep.Flows {
		for _, op := range f.Ops {
			if op.Requests == 0 || op.Errors != 0 {
				t.Errorf("%s/%s: %d requests, %d errors", f.Flow, op.Op, op.Requests, op.Errors)
			}
		}
		if f.Flow != FlowToken && (f.Delivery == nil || f.Delivery.Messages == 0 || f.Delivery.Undelivered != 0) {
			t.Errorf("%s: delivery %+v", f.Flow, f.Delivery)
		}
		if f.Flow != FlowToken && f.Ratio <= 0 {
			t.Errorf("%s: no ratio", f.Flow)
		}
	}
	if rep.Limits.CommitsPerSec <= 0 || rep.Limits.HashesPerSec <= 0 {
		t.Errorf("limits %+v", rep.Limits)
	}
	var out bytes.Buffer
	if err := WriteTable(&out, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"send-reset", "otp-verify", "durable commits/s", "targets:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSummarise(t *testing.T) {
	t.Parallel()
	var ss []sample
	for i := 1; i <= 100; i++ {
		ss = append(ss, sample{op: "a", latency: time.Duration(i) * time.Millisecond, out: ok})
	}
	ss = append(ss, sample{op: "a", latency: time.Microsecond, out: shed}, sample{op: "b", out: fail})
	got := summarise(ss, time.Second)
	if len(got) != 2 || got[0].Op != "a" || got[1].Op != "b" {
		t.Fatalf("%+v", got)
	}
	a := got[0]
	if a.Requests != 100 || a.Shed != 1 || a.P50ms != 50 || a.P99ms != 99 || a.MaxMs != 100 || a.RPS != 100 {
		t.Errorf("%+v", a)
	}
	if got[1].Errors != 1 || got[1].Requests != 0 {
		t.Errorf("%+v", got[1])
	}
}

func TestMessageText(t *testing.T) {
	t.Parallel()
	raw := "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nopen http://127.0.0.1:1/reset?token=3DAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n and more\r\n--b--\r\n"
	m := linkRE.FindStringSubmatch(messageText([]byte("Subject: x\r\n" + raw)))
	if m == nil || m[1] != strings.Repeat("A", 43) {
		t.Fatalf("link not found: %v", m)
	}
}
