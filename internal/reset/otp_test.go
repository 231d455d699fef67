package reset_test

import (
	"testing"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/reset"
	"github.com/resetd/resetd/internal/store"
)

// otpTry is one step of an OTP scenario: "send" a code, try the "right"
// one, a "wrong" one, the "older" one (before the latest send), or ask
// for an "unknown" user; wait first moves the clock.
type otpTry struct {
	do   string
	wait time.Duration
	want error
}

func tries(do string, n int) []otpTry {
	out := make([]otpTry, n)
	for i := range out {
		out[i] = otpTry{do: do, want: reset.ErrOTPInvalid}
	}
	return out
}

func TestOTPFlow(t *testing.T) {
	t.Parallel()
	send, right := otpTry{do: "send"}, otpTry{do: "right"}
	daily := []otpTry{send}
	for range 3 {
		daily = append(append(daily, tries("wrong", 3)...), send)
	}
	for _, c := range []struct {
		name    string
		patch   reset.SettingsPatch
		channel string
		digits  int
		tries   []otpTry
	}{
		{name: "right code", tries: []otpTry{send, right}},
		{name: "by sms", channel: "sms", tries: []otpTry{send, right}},
		{name: "8 digits", patch: reset.SettingsPatch{OTPLength: ptr(8)}, digits: 8, tries: []otpTry{send, right}},
		{name: "a spent code", tries: []otpTry{send, right, {do: "right", want: reset.ErrOTPInvalid}}},
		{name: "wrong tries under the per-code cap", patch: reset.SettingsPatch{OTPMaxAttempts: ptr(3)},
			tries: append(append([]otpTry{send}, tries("wrong", 2)...), right)},
		{name: "the per-code cap kills the code", patch: reset.SettingsPatch{OTPMaxAttempts: ptr(3)},
			tries: append(append([]otpTry{send}, tries("wrong", 3)...), otpTry{do: "right", want: reset.ErrOTPInvalid})},
		{name: "expired", tries: []otpTry{send, {do: "right", wait: 601 * time.Second, want: reset.ErrOTPInvalid}}},
		{name: "just before expiry", tries: []otpTry{send, {do: "right", wait: 599 * time.Second}}},
		{name: "a newer code kills the older", patch: reset.SettingsPatch{SendsPerUserHour: ptr(0)},
			tries: []otpTry{send, send, {do: "older", want: reset.ErrOTPInvalid}, right}},
		{name: "unknown user, same refusal", tries: []otpTry{send, {do: "unknown", want: reset.ErrOTPInvalid}, right}},
		// 10 wrong tries a day across resends; the 11th fails even when right.
		{name: "daily cap across resends", patch: reset.SettingsPatch{SendsPerUserHour: ptr(0)},
			tries: append(append(daily, otpTry{do: "wrong", want: reset.ErrOTPInvalid}), otpTry{do: "right", want: &reset.LimitError{}})},
		{name: "sms country not allowed", channel: "sms", patch: reset.SettingsPatch{SMSCountries: ptr([]string{"GB"})},
			tries: []otpTry{{do: "send", want: reset.ErrSMSNotAllowed}}},
		{name: "4th sms to one number in an hour", channel: "sms", patch: reset.SettingsPatch{SendsPerUserHour: ptr(0)},
			tries: []otpTry{send, send, send, {do: "send", want: &reset.LimitError{}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			b.putUser(t, "u", jane)
			b.settings(t, c.patch)
			channel := c.channel
			if channel == "" {
				channel = delivery.ChannelEmail
			}
			cms, err := b.svc.ContactMethods(b.ctx, "acme", "u")
			if err != nil {
				t.Fatal(err)
			}
			var cm reset.ContactMethod
			for _, m := range cms {
				if m.Type == channel {
					cm = m
				}
			}
			var codes []string // every code sent, newest last
			wrongs := 0        // wrong tries on the newest code
			for i, try := range c.tries {
				b.clock.Advance(try.wait)
				var err error
				var tok string
				switch try.do {
				case "send":
					var expires time.Time
					var masked string
					expires, masked, err = b.svc.SendOTP(b.ctx, maker, "acme", "u", cm.ID)
					if err != nil {
						break
					}
					msgs := b.outbox(t)
					m := msgs[len(msgs)-1]
					if m.Kind != delivery.KindOTP || m.Channel != channel || masked != cm.Destination || !expires.Equal(b.clock.Now().Add(600*time.Second)) {
						t.Fatalf("send %d: %s/%s, %q, expires %v", i, m.Kind, m.Channel, masked, expires)
					}
					code := find(t, otpCode, m)
					if want := max(c.digits, 6); len(code) != want {
						t.Fatalf("code %q: want %d digits", code, want)
					}
					codes, wrongs = append(codes, code), 0
				case "right", "older", "wrong", "unknown":
					in := reset.OTPVerifyInput{Username: jane.Username, OTP: codes[len(codes)-1]}
					switch try.do {
					case "older":
						if in.OTP = codes[len(codes)-2]; in.OTP == codes[len(codes)-1] {
							continue // the two codes drew the same digits
						}
					case "wrong":
						if in.OTP = "000000"; codes[len(codes)-1] == in.OTP {
							in.OTP = "000001"
						}
						wrongs++
					case "unknown":
						in.Username = "nobody"
					}
					tok, _, err = b.svc.VerifyOTP(b.ctx, reset.Actor{IP: "192.0.2.9"}, "acme", in)
				}
				if !is(err, try.want) {
					t.Fatalf("try %d (%s): %v, want %v", i, try.do, err, try.want)
				}
				if try.do == "wrong" && wrongs <= 3 {
					if o := b.otp(t); o.Attempts != wrongs {
						t.Errorf("after %d wrong tries the store counts %d", wrongs, o.Attempts)
					}
				}
				if try.do == "right" && err == nil {
					if o := b.otp(t); o.UsedAt.IsZero() {
						t.Error("a redeemed code is not marked used in the store")
					}
					if !b.live(t, tok) {
						t.Fatal("the traded token is not live in the store")
					}
					if err := b.svc.ChangePassword(b.ctx, maker, tok, goodPassword); err != nil {
						t.Fatalf("change with the OTP's token: %v", err)
					}
				}
			}
		})
	}
}

// otp is the user's OTP row as the store holds it.
func (b *bundle) otp(t *testing.T) store.OTP {
	t.Helper()
	var o store.OTP
	b.write(t, func(tx store.Tx) (err error) {
		o, err = tx.LockOTP(b.ctx, "acme", "u")
		return err
	})
	return o
}
