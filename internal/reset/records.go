package reset

import (
	"context"
	"time"

	"github.com/resetd/resetd/internal/store"
)

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

func deliveries(ds []store.Delivery) []Delivery {
	out := make([]Delivery, 0, len(ds))
	for _, d := range ds {
		out = append(out, Delivery{ID: d.ID, InstitutionID: d.InstitutionID, UserID: d.UserID, Kind: d.Kind, Channel: d.Channel,
			Destination: d.Destination, State: d.State, Attempts: d.Attempts, LastError: d.LastError, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt})
	}
	return out
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
