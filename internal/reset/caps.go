package reset

import (
	"context"
	"time"

	"github.com/resetd/resetd/internal/request"
	"github.com/resetd/resetd/internal/store"
)

// Rate-limit and cap counters are named here, once: every site that counts
// or reads one builds its key with these, so two flows sharing a budget
// (an admin send and a self-service send to one user) cannot drift apart.

// sendKey counts the messages sent to one user (sendsPerUserHour).
func sendKey(institutionID, userID string) string { return "send:" + institutionID + ":" + userID }

// ipKey counts one client IP's public requests (publicPerIPMinute).
// IPv6 clients are counted by their /64 (request.Bucket).
func ipKey(institutionID, ip string) string { return "ip:" + institutionID + ":" + request.Bucket(ip) }

// selfServiceNameKey counts self-service requests naming one username
// (publicPerUsernameHour).
func selfServiceNameKey(institutionID, username string) string {
	return "selfname:" + institutionID + ":" + store.UsernameKey(username)
}

// verifyFailKey counts one user's failed login checks.
func verifyFailKey(institutionID, userID string) string {
	return "verifyfail:" + institutionID + ":" + userID
}

// smsDestKey counts SMS to one number, across institutions.
func smsDestKey(phone string) string { return "smsdest:" + phone }

// limit counts one event against key at now and refuses past max in the
// window (max ≤ 0: no limit).
func (s *Service) limit(ctx context.Context, tx store.Tx, now time.Time, name, key string, max int, window time.Duration) error {
	if max <= 0 {
		return nil
	}
	n, err := tx.Hit(ctx, key, window, now)
	if err != nil {
		return err
	}
	if n > max {
		return limited(name, window, now)
	}
	return nil
}

// smsLimit caps SMS per destination number, across institutions.
func (s *Service) smsLimit(ctx context.Context, tx store.Tx, now time.Time, phone string) error {
	return s.limit(ctx, tx, now, "smsPerDestinationHour", smsDestKey(phone), smsPerDestinationHour, time.Hour)
}

// otpFailKey names the daily wrong-try counter: per user when the user
// exists (userID non-empty), else per name asked for, so an unknown user
// is capped alike and the cap is no oracle.
func otpFailKey(institutionID, userID, asked string) string {
	if userID != "" {
		return "otpfail:" + institutionID + ":id:" + userID
	}
	return "otpfail:" + institutionID + ":name:" + asked
}

// otpFailCap refuses once a key has had otpFailMax wrong tries (wrong codes
// and wrong facts alike) in the day.
func otpFailCap(ctx context.Context, tx store.Tx, key string, now time.Time) error {
	fails, err := tx.Count(ctx, key, otpFailWindow, now)
	if err != nil {
		return err
	}
	if fails >= otpFailMax {
		return limited("otpFailuresPerDay", otpFailWindow, now)
	}
	return nil
}
