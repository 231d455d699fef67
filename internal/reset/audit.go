package reset

import (
	"context"
	"encoding/base64"
	"errors"
	"time"

	"github.com/resetd/resetd/internal/store"
)

// Audit pages (SPEC §12): every record is reachable by following cursors,
// oldest first.

// AuditRecord is one audited action as the API and the operator's CLI show
// it; it never holds a secret.
type AuditRecord struct {
	Time          time.Time `json:"time"`
	Action        string    `json:"action"`
	InstitutionID string    `json:"institutionId"`
	UserID        string    `json:"userId"`
	ClientID      string    `json:"clientId"`
	IP            string    `json:"ip"`
	TransactionID string    `json:"transactionId"`
	Outcome       string    `json:"outcome"`
	// Count is how many requests the record stands for: more than one
	// for an aggregated authentication failure.
	Count int `json:"count"`
}

// Page sizes of the audit log.
const (
	AuditDefaultLimit = 1000
	AuditMaxLimit     = 10000
)

// AuditQuery selects a page: Since inclusive, Until exclusive (zero: no
// bound), Limit records (0: AuditDefaultLimit), after Cursor (a
// NextCursor of an earlier page; "" from the start).
type AuditQuery struct {
	Since, Until time.Time
	Limit        int
	Cursor       string
}

// AuditPage is one page; NextCursor is empty on the last.
type AuditPage struct {
	Records    []AuditRecord
	NextCursor string
}

func auditRecords(rs []store.AuditRecord) []AuditRecord {
	out := make([]AuditRecord, 0, len(rs))
	for _, r := range rs {
		out = append(out, AuditRecord{Time: r.Time, Action: r.Action, InstitutionID: r.InstitutionID, UserID: r.UserID,
			ClientID: r.ClientID, IP: r.IP, TransactionID: r.TransactionID, Outcome: r.Outcome, Count: max(r.Count, 1)})
	}
	return out
}

func (s *Service) audit(ctx context.Context, tx store.Tx, now time.Time, a Actor, action, institutionID, userID, outcome string) error {
	return tx.InsertAudit(ctx, store.AuditRecord{
		Time: now, Action: action, InstitutionID: institutionID, UserID: userID,
		ClientID: a.ClientID, IP: a.IP, TransactionID: a.TransactionID, Outcome: outcome,
	})
}

// Audit returns a page of an institution's audit records, oldest first.
func (s *Service) Audit(ctx context.Context, institutionID string, q AuditQuery) (AuditPage, error) {
	if err := checkIDs(institutionID); err != nil {
		return AuditPage{}, err
	}
	if err := s.store.View(ctx, func(tx store.ReadTx) error {
		_, err := s.settingsIn(ctx, tx, institutionID)
		return err
	}); err != nil {
		return AuditPage{}, err
	}
	return s.auditPage(ctx, institutionID, q)
}

// OperatorAudit is the operator's view of the audit log: every
// institution's records, and those of no institution (failures naming an
// institution that does not exist), when institutionID is empty.
func (s *Service) OperatorAudit(ctx context.Context, institutionID string, q AuditQuery) (AuditPage, error) {
	return s.auditPage(ctx, institutionID, q)
}

func (s *Service) auditPage(ctx context.Context, institutionID string, q AuditQuery) (AuditPage, error) {
	limit := q.Limit
	switch {
	case limit == 0:
		limit = AuditDefaultLimit
	case limit < 0 || limit > AuditMaxLimit:
		return AuditPage{}, invalid("limit", "limit must be between 1 and 10000")
	}
	f := store.AuditFilter{InstitutionID: institutionID, Since: q.Since, Until: q.Until, Limit: limit + 1}
	if q.Cursor != "" {
		pos, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || len(q.Cursor) > 100 {
			return AuditPage{}, invalid("cursor", "cursor is not one this server gave")
		}
		f.After = string(pos)
	}
	rs, err := s.store.Audit(ctx, f)
	if errors.Is(err, store.ErrBadPosition) {
		return AuditPage{}, invalid("cursor", "cursor is not one this server gave")
	}
	if err != nil {
		return AuditPage{}, err
	}
	// One record more than asked for tells whether this is the last page.
	var next string
	if len(rs) > limit {
		rs = rs[:limit]
		next = base64.RawURLEncoding.EncodeToString([]byte(rs[limit-1].Pos))
	}
	return AuditPage{Records: auditRecords(rs), NextCursor: next}, nil
}
