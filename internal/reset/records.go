package reset

import (
	"context"
	"time"

	"github.com/resetd/resetd/internal/store"
)

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
}

// Delivery is the support-staff view of one outgoing message.
type Delivery struct {
	ID            int64     `json:"id"`
	InstitutionID string    `json:"institutionId"`
	UserID        string    `json:"userId"`
	Kind          string    `json:"kind"`
	Channel       string    `json:"channel"`
	Destination   string    `json:"destination"` // masked
	State         string    `json:"state"`       // queued, sent, logged, failed
	Attempts      int       `json:"attempts"`
	LastError     string    `json:"lastError"`
	CreatedAt     time.Time `json:"createdAt"`
	UpdatedAt     time.Time `json:"updatedAt"`
}

func auditRecords(rs []store.AuditRecord) []AuditRecord {
	out := make([]AuditRecord, 0, len(rs))
	for _, r := range rs {
		out = append(out, AuditRecord{Time: r.Time, Action: r.Action, InstitutionID: r.InstitutionID, UserID: r.UserID,
			ClientID: r.ClientID, IP: r.IP, TransactionID: r.TransactionID, Outcome: r.Outcome})
	}
	return out
}

func deliveries(ds []store.Delivery) []Delivery {
	out := make([]Delivery, 0, len(ds))
	for _, d := range ds {
		out = append(out, Delivery(d))
	}
	return out
}

func (s *Service) audit(ctx context.Context, tx store.Tx, now time.Time, a Actor, action, institutionID, userID, outcome string) error {
	return tx.InsertAudit(ctx, store.AuditRecord{
		Time: now, Action: action, InstitutionID: institutionID, UserID: userID,
		ClientID: a.ClientID, IP: a.IP, TransactionID: a.TransactionID, Outcome: outcome,
	})
}

// AuditFailure records a refused request (failed authentication, a rate
// limit) in its own transaction.
func (s *Service) AuditFailure(ctx context.Context, a Actor, action, institutionID, userID, outcome string) {
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		return s.audit(ctx, tx, now, a, action, institutionID, userID, outcome)
	})
	if err != nil {
		s.logger.ErrorContext(ctx, "writing audit record", "action", action, "err", err)
	}
}

// Audit returns an institution's audit records since a time, newest last.
func (s *Service) Audit(ctx context.Context, institutionID string, since time.Time) ([]AuditRecord, error) {
	if err := checkIDs(institutionID); err != nil {
		return nil, err
	}
	if err := s.store.View(ctx, func(tx store.ReadTx) error {
		_, err := s.settingsIn(ctx, tx, institutionID)
		return err
	}); err != nil {
		return nil, err
	}
	rs, err := s.store.Audit(ctx, store.AuditFilter{InstitutionID: institutionID, Since: since, Limit: 1000})
	return auditRecords(rs), err
}

// OperatorAudit is the operator's view of the audit log (every
// institution when institutionID is empty), newest last.
func (s *Service) OperatorAudit(ctx context.Context, institutionID string, since time.Time, limit int) ([]AuditRecord, error) {
	rs, err := s.store.Audit(ctx, store.AuditFilter{InstitutionID: institutionID, Since: since, Limit: limit})
	return auditRecords(rs), err
}

// Outbox is the operator's view of recent deliveries of every
// institution, newest first.
func (s *Service) Outbox(ctx context.Context, failedOnly bool, limit int) ([]Delivery, error) {
	ds, err := s.store.AllDeliveries(ctx, failedOnly, limit)
	return deliveries(ds), err
}

// Deliveries returns a user's latest messages, newest first.
func (s *Service) Deliveries(ctx context.Context, institutionID, userID string) ([]Delivery, error) {
	if err := checkIDs(institutionID, userID); err != nil {
		return nil, err
	}
	if err := s.store.View(ctx, func(tx store.ReadTx) error {
		if _, err := s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		_, err := tx.User(ctx, institutionID, userID)
		return mapNotFound(err)
	}); err != nil {
		return nil, err
	}
	ds, err := s.store.Deliveries(ctx, institutionID, userID, 50)
	return deliveries(ds), err
}

// AuditOperator records an operator's action from the CLI (a key or
// secret rotation) against an institution ("" for none).
func (s *Service) AuditOperator(ctx context.Context, action, institutionID string) error {
	return s.store.Update(ctx, func(tx store.Tx) error {
		return s.audit(ctx, tx, s.now(), Actor{ClientID: "cli"}, action, institutionID, "", "ok")
	})
}
