package reset

import (
	"context"
	"time"

	"github.com/resetd/resetd/internal/secret"
	"github.com/resetd/resetd/internal/store"
)

// ApprovalRequest is an admin reset waiting for a second client.
type ApprovalRequest struct {
	ID        string
	ExpiresAt time.Time
}

func newApprovalID() string {
	return "ap_" + secret.Hex(16)
}

// Approve releases a reset link that waits for approval. The approver
// must be another client; an approval is used once and expires after an
// hour (then it is not found).
func (s *Service) Approve(ctx context.Context, a Actor, institutionID, approvalID string) error {
	method, err := s.approve(ctx, a, institutionID, approvalID)
	if err == nil {
		s.observer.ResetIssued(method, "admin")
	}
	return err
}

func (s *Service) approve(ctx context.Context, a Actor, institutionID, approvalID string) (method string, err error) {
	if err := checkIDs(institutionID); err != nil {
		return "", err
	}
	if !ValidID(approvalID) {
		return "", ErrNotFound
	}
	return method, s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		st, err := s.settingsIn(ctx, tx, institutionID)
		if err != nil {
			return err
		}
		ap, err := tx.LockApproval(ctx, institutionID, approvalID)
		if err != nil {
			return mapNotFound(err)
		}
		switch {
		case !now.Before(ap.ExpiresAt):
			return ErrNotFound
		case !ap.ApprovedAt.IsZero():
			return ErrAlreadyApproved
		case ap.RequestedBy == a.ClientID:
			return ErrSelfApproval
		}
		if err := tx.MarkApproved(ctx, institutionID, approvalID, a.ClientID, now); err != nil {
			return err
		}
		u, err := tx.User(ctx, institutionID, ap.UserID)
		if err != nil {
			return mapNotFound(err)
		}
		method = ap.Method
		if err := s.sendLink(ctx, tx, now, st, u, ap.Method, a); err != nil {
			return err
		}
		return s.audit(ctx, tx, now, a, "reset.approve", institutionID, ap.UserID, "ok")
	})
}
