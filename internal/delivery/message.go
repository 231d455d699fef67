// Package delivery owns getting messages to people: the durable send job on
// River, the email (SMTP) and SMS (Twilio-shaped HTTP, signed webhook)
// senders, the development log sender, and the message templates.
package delivery

import (
	"context"
	"errors"
)

// Channels a message can travel on.
const (
	ChannelEmail = "email"
	ChannelSMS   = "sms"
)

// Message kinds; each has an email and an SMS template.
const (
	KindResetLink       = "reset_link"
	KindOTP             = "otp"
	KindPasswordChanged = "password_changed"
	// KindContactChanged tells the OLD address or number that it was
	// replaced (SIM-swap and takeover defence, SPEC §7).
	KindContactChanged = "contact_changed"
)

// Message is a rendered message, ready to hand to a Sender.
type Message struct {
	Channel string `json:"channel"`
	// Kind is one of the Kind constants (for metrics and logs).
	Kind string `json:"kind,omitempty"`
	To   string `json:"to"`
	// From is the email sender address; empty means the sender's default.
	// SMS senders ignore it and use their configured number.
	From string `json:"from,omitempty"`
	// FromName is the display name of From (the institution's
	// displayName) when From itself carries none.
	FromName string `json:"fromName,omitempty"`
	Subject  string `json:"subject,omitempty"`
	Text     string `json:"text"`
	HTML     string `json:"html,omitempty"`
	// Language is the BCP 47 tag the message is written in: an email's
	// Content-Language.
	Language string `json:"language,omitempty"`
}

// Sender hands a message to a carrier (an SMTP server, an SMS API).
// A nil error means the carrier accepted the message.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// permanentError marks a failure that a retry cannot fix (a refused
// recipient, bad credentials, an invalid number).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
