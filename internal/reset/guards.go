package reset

import (
	"strings"
	"time"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// sameContact compares contact values after normalisation (emails
// lower-cased, phones already E.164).
func sameContact(a, b string) bool { return strings.EqualFold(a, b) }

// sendable applies the defences that can refuse any send to a user on a
// channel: the dispute lock and the contact-change cooldown.
func (s *Service) sendable(st Settings, u store.User, channel string, now time.Time) error {
	if now.Before(u.LockedUntil) {
		return ErrLocked
	}
	changed := u.EmailChangedAt
	if channel == delivery.ChannelSMS {
		changed = u.PhoneChangedAt
	}
	if !changed.IsZero() && now.Before(changed.Add(time.Duration(st.ContactChangeCooldown)*time.Second)) {
		return ErrContactCooldown
	}
	return nil
}
