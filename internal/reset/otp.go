package reset

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
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
	if u.Phone != "" && !s.noSMS {
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

// OTPSend is what an OTP send did: the code's expiry and its masked
// destination, or, under maker-checker, the approval it waits for.
type OTPSend struct {
	ExpiresAt   time.Time
	Destination string
	Approval    ApprovalRequest
}

// approvalMethodOTP prefixes the method of an approval that sends an OTP
// ("otp-email", "otp-sms"); a reset link's is its channel.
const approvalMethodOTP = "otp-"

// SendOTP sends a one-time passcode to the contact method the user chose.
// With the institution's adminResetApproval on, it sends nothing and
// returns the approval a second client must give (SPEC §10).
func (s *Service) SendOTP(ctx context.Context, a Actor, institutionID, userID, contactMethodID string) (OTPSend, error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return OTPSend{}, err
	}
	if contactMethodID == "" || len(contactMethodID) > 64 {
		return OTPSend{}, invalid("contactMethodId", "contactMethodId is required")
	}
	var out OTPSend
	var cm ContactMethod
	var p preparedOTP
	err := s.renderedFor(ctx, institutionID, userID,
		func(st Settings, u store.User) (err error) {
			if cm, err = s.chosenMethod(u, contactMethodID); err != nil {
				return err
			}
			if st.AdminResetApproval {
				return nil // nothing is sent until a second client approves
			}
			p, err = s.prepareOTP(st, u, cm.Type, s.now())
			return err
		},
		func(tx store.Tx, now time.Time, st Settings, u store.User) (err error) {
			// The user's contacts are as rendered (else renderedFor starts
			// over), so the chosen method is the same one.
			if !st.AdminResetApproval {
				out.ExpiresAt, err = s.sendOTP(ctx, tx, now, st, u, p, a)
				out.Destination = cm.Destination
				return err
			}
			if p.channel != "" {
				return errStale // rendered before approval was turned on
			}
			if _, err := s.linkTarget(st, u, cm.Type, now); err != nil {
				return err
			}
			out.Approval = ApprovalRequest{ID: newApprovalID(), ExpiresAt: now.Add(approvalLifetime)}
			if err := tx.InsertApproval(ctx, store.Approval{ID: out.Approval.ID, InstitutionID: institutionID, UserID: userID, Method: approvalMethodOTP + cm.Type,
				RequestedBy: a.ClientID, CreatedAt: now, ExpiresAt: out.Approval.ExpiresAt}); err != nil {
				return err
			}
			return s.audit(ctx, tx, now, a, "otp.request_approval", institutionID, userID, "pending")
		})
	if err == nil && out.Approval.ID == "" {
		s.observer.ResetIssued(cm.Type, "otp")
	}
	return out, err
}

// preparedOTP is a code rendered before its write transaction.
type preparedOTP struct {
	channel string
	code    string
	dispute dispute
	message delivery.Message
}

// prepareOTP refuses early what sendOTP would refuse for the user as
// read, makes the code and renders its message.
func (s *Service) prepareOTP(st Settings, u store.User, channel string, now time.Time) (preparedOTP, error) {
	to, err := s.linkTarget(st, u, channel, now)
	if err != nil {
		return preparedOTP{}, err
	}
	p := preparedOTP{channel: channel, code: s.otpCode(st.OTPLength), dispute: s.newDispute()}
	p.message, err = s.render(st, u.Locale, delivery.KindOTP, channel, to, delivery.TemplateData{
		UserName: u.Username, Code: p.code, ExpiresIn: time.Duration(st.OTPExpiration) * time.Second, DisputeLink: p.dispute.link,
	})
	return p, err
}

// sendOTP applies the send's rules to the user as read in tx, then stores
// the prepared code and queues its message.
func (s *Service) sendOTP(ctx context.Context, tx store.Tx, now time.Time, st Settings, u store.User, p preparedOTP, a Actor) (time.Time, error) {
	to, err := s.linkTarget(st, u, p.channel, now)
	if err != nil {
		return time.Time{}, err
	}
	if err := s.limit(ctx, tx, now, "sendsPerUserHour", sendKey(u.InstitutionID, u.ID), st.SendsPerUserHour, time.Hour); err != nil {
		return time.Time{}, err
	}
	if p.channel == delivery.ChannelSMS {
		if err := s.smsLimit(ctx, tx, now, u.InstitutionID, to); err != nil {
			return time.Time{}, err
		}
	}
	if err := p.dispute.store(ctx, tx, u, now); err != nil {
		return time.Time{}, err
	}
	expires := now.Add(time.Duration(st.OTPExpiration) * time.Second)
	if err := tx.PutOTP(ctx, store.OTP{InstitutionID: u.InstitutionID, UserID: u.ID, MAC: s.otpMAC(u.InstitutionID, u.ID, p.code),
		Channel: p.channel, CreatedAt: now, ExpiresAt: expires, MaxAttempts: st.OTPMaxAttempts}); err != nil {
		return time.Time{}, err
	}
	if err := s.queue(ctx, tx, now, st, u.InstitutionID, u.ID, delivery.KindOTP, p.message); err != nil {
		return time.Time{}, err
	}
	if err := s.emit(ctx, tx, now, st, u.InstitutionID, u.ID, delivery.EventResetRequested, map[string]any{"flow": "otp", "channel": p.channel}); err != nil {
		return time.Time{}, err
	}
	return expires, s.audit(ctx, tx, now, a, "otp.send."+p.channel, u.InstitutionID, u.ID, "ok")
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
		return cm, &NotFoundError{What: "contact method"}
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
		// The per-IP limit counts before any lookup of a user; an
		// institution resetd does not know is counted per IP alone, and
		// answers as a known one with a wrong code (no oracle).
		st, err := s.settingsIn(ctx, tx, institutionID)
		if errors.Is(err, ErrNotFound) {
			if err := s.limit(ctx, tx, now, "publicPerIPMinute", anonIPKey(a.IP), anonPerIPMinute, time.Minute); err != nil {
				return err
			}
			s.otpMAC(institutionID, in.Username+in.UserID, code) // the work of a comparison
			outcome = ErrOTPInvalid
			return nil
		}
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
		ok := false
		var o store.OTP
		live := false
		if known {
			o, err = tx.LockOTP(ctx, institutionID, u.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
			case err != nil:
				return err
			default:
				live = o.UsedAt.IsZero() && now.Before(o.ExpiresAt) && o.Attempts < o.MaxAttempts && u.Status == StatusActive
			}
		}
		// Only tries against a live code count toward the user's daily cap
		// (and are refused by it): tries against nothing count per IP
		// alone, so nobody can lock a customer out by naming them.
		failKey := otpFailKey(institutionID, u.ID)
		if live {
			if err := otpFailCap(ctx, tx, failKey, now); err != nil {
				return err
			}
			ok = code != "" && s.otpMatches(institutionID, u.ID, code, o.MAC)
			// Required facts are part of the answer: a wrong fact is a
			// wrong try, indistinguishable from a wrong code.
			if len(st.RequireFacts) > 0 {
				factsOK, rekeyed := s.factsMatch(st, u, in.Facts)
				ok = ok && factsOK
				// Right, but made under an older key: kept under the current one.
				if ok && rekeyed != nil {
					if err := tx.SetFacts(ctx, institutionID, u.ID, rekeyed); err != nil {
						return err
					}
				}
			}
		} else {
			// Same work as a try on a live code — a comparison, and a
			// counter read and written — so that timing tells a name with
			// a code from one without (or from nobody) no more than the
			// answer does. The shadow counter is never a cap.
			s.otpMatches(institutionID, in.UserID, code, s.otpMAC(institutionID, in.Username, code))
			shadow := otpShadowKey(institutionID, store.UsernameKey(in.Username)+"\x00"+in.UserID)
			if _, err := tx.Count(ctx, shadow, otpFailWindow, now); err != nil {
				return err
			}
			if _, err := tx.Hit(ctx, shadow, otpFailWindow, now); err != nil {
				return err
			}
		}
		if !ok {
			if live {
				o.Attempts++
				if err := tx.UpdateOTP(ctx, o); err != nil {
					return err
				}
				if _, err := tx.Hit(ctx, failKey, otpFailWindow, now); err != nil {
					return err
				}
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
