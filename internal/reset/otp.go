package reset

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"github.com/nyaruka/phonenumbers"
	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// More purposes and limits of the OTP flow (SPEC §4).
const (
	// PurposeOTP marks the reset token an OTP was traded for.
	PurposeOTP = "otp"
	// otpTokenLifetime is how long that token lives.
	otpTokenLifetime = 10 * time.Minute
	// Wrong OTP tries a user gets in otpFailWindow, across resends.
	otpFailMax    = 10
	otpFailWindow = 24 * time.Hour
	// SMS to one destination number per hour (SMS-pumping defence).
	smsPerDestinationHour = 3
)

// ErrOTPInvalid is every refusal of an OTP verification that must look
// alike: wrong, expired or spent code, unknown user (400).
var ErrOTPInvalid = errors.New("reset: the code is not valid")

// ErrSMSNotAllowed means the destination may not get SMS (country not
// allowed, premium rate) (400).
var ErrSMSNotAllowed = errors.New("reset: SMS to this number is not allowed")

// ContactMethod is one way to reach a user, with its destination masked.
type ContactMethod struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Destination string `json:"destination"`
}

// contactMethodID is stable while the destination is unchanged, and
// reveals nothing about it.
func (s *Service) contactMethodID(u store.User, channel, dest string) string {
	return s.contactMethodIDs(u, channel, dest)[0]
}

// contactMethodIDs is the id under every key of the ring, current first:
// an id a client listed before a rotation still resolves (SPEC §9).
func (s *Service) contactMethodIDs(u store.User, channel, dest string) []string {
	var out []string
	for _, mac := range s.key.MACs("contact-method", []byte(u.InstitutionID+"\x00"+u.ID+"\x00"+channel+"\x00"+dest)) {
		out = append(out, channel+"-"+hex.EncodeToString(mac[:6]))
	}
	return out
}

func (s *Service) contactMethods(u store.User) []ContactMethod {
	out := []ContactMethod{}
	if u.Email != "" {
		out = append(out, ContactMethod{ID: s.contactMethodID(u, delivery.ChannelEmail, u.Email), Type: delivery.ChannelEmail, Destination: MaskEmail(u.Email)})
	}
	if u.Phone != "" {
		out = append(out, ContactMethod{ID: s.contactMethodID(u, delivery.ChannelSMS, u.Phone), Type: delivery.ChannelSMS, Destination: MaskPhone(u.Phone)})
	}
	return out
}

// ContactMethods lists a user's contact methods, masked.
func (s *Service) ContactMethods(ctx context.Context, institutionID, userID string) ([]ContactMethod, error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return nil, err
	}
	var u store.User
	err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		_, u, err = s.userIn(ctx, tx, institutionID, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.contactMethods(u), nil
}

// smsAllowed applies the SMS-pumping defences that depend on the number.
func smsAllowed(st Settings, phone string) error {
	num, err := phonenumbers.Parse(phone, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return ErrSMSNotAllowed
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST:
		return ErrSMSNotAllowed
	}
	if len(st.SMSCountries) > 0 && !slices.Contains(st.SMSCountries, phonenumbers.GetRegionCodeForNumber(num)) {
		return ErrSMSNotAllowed
	}
	return nil
}

func (s *Service) otpCode(n int) string {
	b := make([]byte, n)
	ten := big.NewInt(10)
	for i := range b {
		d, _ := rand.Int(rand.Reader, ten)
		b[i] = byte('0' + d.Int64())
	}
	return string(b)
}

func otpData(institutionID, userID, code string) []byte {
	return []byte(institutionID + "\x00" + userID + "\x00" + code)
}

// otpMAC is an OTP's stored form, tagged with the key that made it.
func (s *Service) otpMAC(institutionID, userID, code string) []byte {
	return s.key.TaggedMAC("otp", otpData(institutionID, userID, code))
}

// otpMatches checks a code against a stored OTP under any key of the ring.
func (s *Service) otpMatches(institutionID, userID, code string, stored []byte) bool {
	ok, _ := s.key.VerifyMAC("otp", otpData(institutionID, userID, code), stored)
	return ok
}

// SendOTP sends a one-time passcode to the contact method the user chose
// and returns its expiry and the masked destination.
func (s *Service) SendOTP(ctx context.Context, a Actor, institutionID, userID, contactMethodID string) (time.Time, string, error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return time.Time{}, "", err
	}
	if contactMethodID == "" || len(contactMethodID) > 64 {
		return time.Time{}, "", invalid("contactMethodId", "contactMethodId is required")
	}
	var expires time.Time
	var masked, channel string
	var code string
	var cm ContactMethod
	var dsp dispute
	var m delivery.Message
	err := s.renderedFor(ctx, institutionID, userID,
		func(st Settings, u store.User) error {
			var err error
			if cm, err = s.chosenMethod(u, contactMethodID); err != nil {
				return err
			}
			to, err := s.linkTarget(st, u, cm.Type, s.now())
			if err != nil {
				return err
			}
			code, dsp = s.otpCode(st.OTPLength), s.newDispute()
			m, err = s.render(st, delivery.KindOTP, cm.Type, to, delivery.TemplateData{
				UserName: u.Username, Code: code, ExpiresIn: time.Duration(st.OTPExpiration) * time.Second, DisputeLink: dsp.link,
			})
			return err
		},
		func(tx store.Tx, now time.Time, st Settings, u store.User) error {
			// The user's contacts are as rendered (else renderedFor starts
			// over), so the chosen method is the same one.
			to, err := s.linkTarget(st, u, cm.Type, now)
			if err != nil {
				return err
			}
			if err := s.limit(ctx, tx, now, "sendsPerUserHour", sendKey(institutionID, userID), st.SendsPerUserHour, time.Hour); err != nil {
				return err
			}
			if cm.Type == delivery.ChannelSMS {
				if err := s.smsLimit(ctx, tx, now, to); err != nil {
					return err
				}
			}
			if err := dsp.store(ctx, tx, u, now); err != nil {
				return err
			}
			expires = now.Add(time.Duration(st.OTPExpiration) * time.Second)
			if err := tx.PutOTP(ctx, store.OTP{InstitutionID: institutionID, UserID: userID, MAC: s.otpMAC(institutionID, userID, code),
				Channel: cm.Type, CreatedAt: now, ExpiresAt: expires, MaxAttempts: st.OTPMaxAttempts}); err != nil {
				return err
			}
			if err := s.queue(ctx, tx, now, st, institutionID, userID, delivery.KindOTP, m); err != nil {
				return err
			}
			masked = cm.Destination
			if err := s.emit(ctx, tx, now, st, institutionID, userID, delivery.EventResetRequested, map[string]any{"flow": "otp", "channel": cm.Type}); err != nil {
				return err
			}
			channel = cm.Type
			return s.audit(ctx, tx, now, a, "otp.send."+cm.Type, institutionID, userID, "ok")
		})
	if err == nil {
		s.observer.ResetIssued(channel, "otp")
	}
	return expires, masked, err
}

// chosenMethod finds the contact method a caller named by its id.
func (s *Service) chosenMethod(u store.User, contactMethodID string) (ContactMethod, error) {
	var cm ContactMethod
	dests := map[string]string{delivery.ChannelEmail: u.Email, delivery.ChannelSMS: u.Phone}
	for _, c := range s.contactMethods(u) {
		for _, id := range s.contactMethodIDs(u, c.Type, dests[c.Type]) {
			if hmac.Equal([]byte(id), []byte(contactMethodID)) {
				cm = c
			}
		}
	}
	if cm.ID == "" {
		return cm, fmt.Errorf("%w: no such contact method", ErrNotFound)
	}
	return cm, nil
}

// OTPVerifyInput names the user (by username or id) and the code.
type OTPVerifyInput struct {
	Username string
	UserID   string
	OTP      string
	Facts    map[string]string
}

// VerifyOTP trades a valid OTP for a reset token (10 minutes). Every
// refusal is ErrOTPInvalid, whatever the cause, and costs the same: one
// write transaction. A user gets at most otpMaxAttempts wrong tries per
// OTP and otpFailMax per day across resends (then *LimitError).
func (s *Service) VerifyOTP(ctx context.Context, a Actor, institutionID string, in OTPVerifyInput) (string, time.Time, error) {
	if err := checkIDs(institutionID); err != nil {
		return "", time.Time{}, err
	}
	if (in.Username == "") == (in.UserID == "") {
		return "", time.Time{}, invalid("username", "give exactly one of username and userId")
	}
	if in.UserID != "" && !ValidID(in.UserID) {
		return "", time.Time{}, ErrOTPInvalid
	}
	if in.Username != "" && !validUsername(in.Username) {
		return "", time.Time{}, ErrOTPInvalid
	}
	code := in.OTP
	if len(code) < 6 || len(code) > 10 || !AllDigits(code) {
		// Malformed codes are wrong codes: same answer, same counting.
		code = ""
	}
	tok, hash := newToken()
	var expires time.Time
	var outcome error
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		st, err := s.settingsIn(ctx, tx, institutionID)
		if err != nil {
			return err
		}
		if err := s.limit(ctx, tx, now, "publicPerIPMinute", ipKey(institutionID, a.IP), st.PublicPerIPMinute, time.Minute); err != nil {
			return err
		}
		var u store.User
		if in.UserID != "" {
			u, err = tx.User(ctx, institutionID, in.UserID)
		} else {
			u, err = tx.UserByUsername(ctx, institutionID, in.Username)
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		known := err == nil
		// The daily cap is counted per user when the user exists, else
		// per name asked for, so an unknown user is capped alike.
		knownID := ""
		if known {
			knownID = u.ID
		}
		failKey := otpFailKey(institutionID, knownID, store.UsernameKey(in.Username)+in.UserID)
		if err := otpFailCap(ctx, tx, failKey, now); err != nil {
			return err
		}
		ok := false
		var o store.OTP
		if known {
			o, err = tx.LockOTP(ctx, institutionID, u.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return err
			default:
				live := o.UsedAt.IsZero() && now.Before(o.ExpiresAt) && o.Attempts < o.MaxAttempts && u.Status == StatusActive
				ok = live && code != "" && s.otpMatches(institutionID, u.ID, code, o.MAC)
				// Required facts are part of the answer: a wrong fact is a
				// wrong try, indistinguishable from a wrong code.
				if len(st.RequireFacts) > 0 {
					factsOK, rekeyed := s.factsMatch(st, u, in.Facts)
					ok = ok && factsOK
					if ok && rekeyed != nil {
						if err := tx.SetFacts(ctx, institutionID, u.ID, rekeyed); err != nil {
							return err
						}
					}
				}
				if live && !ok {
					o.Attempts++
					if err := tx.UpdateOTP(ctx, o); err != nil {
						return err
					}
				}
			}
		} else {
			// Same work as a comparison for a real user.
			s.otpMatches(institutionID, in.UserID, code, s.otpMAC(institutionID, in.Username, code))
		}
		if !ok {
			if _, err := tx.Hit(ctx, failKey, otpFailWindow, now); err != nil {
				return err
			}
			outcome = ErrOTPInvalid
			return s.audit(ctx, tx, now, a, "otp.verify", institutionID, u.ID, "invalid")
		}
		o.UsedAt = now
		if err := tx.UpdateOTP(ctx, o); err != nil {
			return err
		}
		expires = now.Add(otpTokenLifetime)
		if err := tx.KillTokens(ctx, institutionID, u.ID, now, PurposeOTP); err != nil {
			return err
		}
		if err := tx.InsertToken(ctx, store.Token{Hash: hash, InstitutionID: institutionID, UserID: u.ID, Purpose: PurposeOTP, CreatedAt: now, ExpiresAt: expires}); err != nil {
			return err
		}
		return s.audit(ctx, tx, now, a, "otp.verify", institutionID, u.ID, "ok")
	})
	var lim *LimitError
	switch {
	case errors.As(err, &lim):
		s.observer.OTPVerified("limited")
	case err != nil:
	case outcome != nil:
		s.observer.OTPVerified("invalid")
	default:
		s.observer.OTPVerified("ok")
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if outcome != nil {
		return "", time.Time{}, outcome
	}
	return tok, expires, nil
}
