package reset

import (
	"context"
	"encoding/hex"
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

// changeRefusalKey counts the password changes refused with one token (by
// its hash: the token itself is never stored).
func changeRefusalKey(tokenHash []byte) string {
	return "changerefused:" + hex.EncodeToString(tokenHash)
}

// changeRefusalWindow outlives any token (expiration is at most 7 days).
const changeRefusalWindow = 7 * 24 * time.Hour

// smsDestKey counts SMS to one number, across institutions.
func smsDestKey(phone string) string { return "smsdest:" + phone }

// Every window slides (SPEC §10): a cap of N an hour admits N in any 60
// minutes, and a refusal says when the oldest counted event leaves it.

// smsInstitutionDestKey counts one institution's SMS to one number.
func smsInstitutionDestKey(institutionID, phone string) string {
	return "smsdest:" + institutionID + ":" + phone
}

// anonIPKey counts public requests from one IP that name no institution
// resetd knows (the tries of SPEC §10 that count per IP only).
func anonIPKey(ip string) string { return "ip:*:" + ip }

// linkFailKey counts wrong facts given with one link token.
func linkFailKey(tokenHash []byte) string { return "linkfail:" + hex.EncodeToString(tokenHash) }

// anonPerIPMinute is the per-IP limit where no institution is known.
const anonPerIPMinute = 20

// smsPerDestinationHourGlobal caps SMS to one number across institutions.
const smsPerDestinationHourGlobal = 10

// limit counts one event against key at now, unless max events are in the
// sliding window already: then it refuses and counts nothing (max ≤ 0: no
// limit). A refused caller is not counted, so one who keeps knocking is
// let in as soon as the oldest counted event leaves the window.
func (s *Service) limit(ctx context.Context, tx store.Tx, now time.Time, name, key string, max int, window time.Duration) error {
	if max <= 0 {
		return nil
	}
	if err := capReached(ctx, tx, now, name, key, max, window); err != nil {
		return err
	}
	_, err := tx.Hit(ctx, key, window, now)
	return err
}

// capReached refuses when key holds max events in its sliding window.
func capReached(ctx context.Context, tx store.ReadTx, now time.Time, name, key string, max int, window time.Duration) error {
	n, err := tx.Count(ctx, key, window, now)
	if err != nil || n < max {
		return err
	}
	oldest, err := tx.Oldest(ctx, key, window, now, n-max)
	if err != nil {
		return err
	}
	return limited(name, oldest.Add(window).Sub(now))
}

// smsLimit caps SMS per destination number: per institution (the tenant's
// budget, smsPerDestinationHour) under a global cap across institutions,
// so one tenant cannot spend another's budget for a shared number.
func (s *Service) smsLimit(ctx context.Context, tx store.Tx, now time.Time, institutionID, phone string) error {
	if err := capReached(ctx, tx, now, "smsPerDestinationHour", smsInstitutionDestKey(institutionID, phone), smsPerDestinationHour, time.Hour); err != nil {
		return err
	}
	if err := s.limit(ctx, tx, now, "smsPerDestinationHourGlobal", smsDestKey(phone), smsPerDestinationHourGlobal, time.Hour); err != nil {
		return err
	}
	_, err := tx.Hit(ctx, smsInstitutionDestKey(institutionID, phone), time.Hour, now)
	return err
}

// otpFailKey names a user's daily wrong-try counter. It counts only tries
// against a live code of the user (SPEC §10): tries against nothing count
// per source IP only, so nobody can lock a customer out from afar.
func otpFailKey(institutionID, userID string) string {
	return "otpfail:" + institutionID + ":id:" + userID
}

// otpShadowKey counts tries that met no live code, per name asked: only
// so that they cost what a counted try costs (timing); it caps nothing.
func otpShadowKey(institutionID, asked string) string {
	return "otpshadow:" + institutionID + ":" + asked
}

// otpFailCap refuses once a user has had otpFailMax wrong tries against
// live codes in the last 24 hours.
func otpFailCap(ctx context.Context, tx store.Tx, key string, now time.Time) error {
	return capReached(ctx, tx, now, "otpFailuresPerDay", key, otpFailMax, otpFailWindow)
}
