package store

import (
	"context"
	"time"
)

// Bulk is one bulk forced reset: which users (every user of the
// institution, or the member rows written when it was made), how far the
// walk of the directory and the sending have come (keyset cursors, so a
// crash resumes where the last committed batch ended), and the counts the
// sending keeps. Sent and failed are counted from the bulk's delivery
// rows (BulkCounts), never kept twice.
type Bulk struct {
	ID            string
	InstitutionID string
	Method        string
	// All: the members are every user of the institution, walked in
	// batches; otherwise they were given when the bulk was made.
	All   bool
	State string
	// Rate is messages per second; 0 follows the institution's setting.
	Rate     int
	ClientID string
	// IdempotencyKey and RequestHash let a retried request find the bulk
	// it made.
	IdempotencyKey string
	RequestHash    []byte
	// Walked: every member row exists; WalkCursor is the last user id
	// walked.
	Walked     bool
	WalkCursor string
	// SendCursor is the last member (user id) whose outcome is decided.
	SendCursor string
	Total      int
	// Issued counts members whose link and message were made.
	Issued int
	// Skipped counts members not sent to, by reason.
	Skipped map[string]int
	// NextAt is the pacing clock: when the next member is due.
	NextAt     time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time
}

// Bulk states.
const (
	BulkRunning   = "running"
	BulkDone      = "done"
	BulkCancelled = "cancelled"
)

// BulkCancelledError is the last error of a bulk's delivery cancelled
// before it was sent (its state is failed).
const BulkCancelledError = "cancelled"

// BulkCounts are a bulk's delivery rows by outcome.
type BulkCounts struct {
	Queued, Sent, Logged, Failed, Cancelled int
}

// Add files n deliveries in state (cancelled: their last error is
// BulkCancelledError).
func (c *BulkCounts) Add(state string, cancelled bool, n int) {
	switch {
	case state == DeliveryQueued:
		c.Queued += n
	case state == DeliverySent:
		c.Sent += n
	case state == DeliveryLogged:
		c.Logged += n
	case cancelled:
		c.Cancelled += n
	default:
		c.Failed += n
	}
}

// BulkMember is one user's outcome in a bulk: "sent" (a link and its
// message were made; DeliveryID is the message) or a skip reason.
type BulkMember struct {
	BulkID, UserID string
	Outcome        string
	DeliveryID     int64
}

// BulkReader reads bulks outside a write transaction (the read pool on
// SQLite): status pages and the members a send will render for. A write
// that depends on what it read reads again in its transaction.
type BulkReader interface {
	// Bulk reads a bulk of an institution (ErrNotFound: none, or another
	// institution's).
	Bulk(ctx context.Context, institutionID, id string) (Bulk, error)
	// BulkCounts counts the bulk's deliveries by outcome.
	BulkCounts(ctx context.Context, bulkID string) (BulkCounts, error)
	// BulkMembersAfter lists up to n member user ids after the user id
	// after, in order.
	BulkMembersAfter(ctx context.Context, bulkID, after string, n int) ([]string, error)
	// BulkDeliveryQueued reports whether a delivery is still queued: a
	// bulk's send job goes ahead only then (a cancelled bulk marked it
	// failed).
	BulkDeliveryQueued(ctx context.Context, deliveryID int64) (bool, error)
}

// BulkWriter is a write transaction's part for bulks.
type BulkWriter interface {
	// InsertBulk stores a new bulk; ErrConflict when the institution has
	// a running bulk or the client used the idempotency key before.
	InsertBulk(ctx context.Context, b Bulk) error
	// BulkByKey finds the bulk a client made with an idempotency key.
	BulkByKey(ctx context.Context, institutionID, clientID, key string) (Bulk, error)
	// RunningBulk is the institution's running bulk (ErrNotFound: none).
	RunningBulk(ctx context.Context, institutionID string) (Bulk, error)
	// LockBulk reads a bulk for update.
	LockBulk(ctx context.Context, institutionID, id string) (Bulk, error)
	// SaveBulk writes a bulk's state, cursors, counts and pacing clock.
	SaveBulk(ctx context.Context, b Bulk) error
	// AddBulkMembers adds user ids as members (a member already there is
	// left alone) and returns how many were added.
	AddBulkMembers(ctx context.Context, bulkID string, userIDs []string) (int, error)
	// WalkBulk adds up to limit of the institution's users after the user
	// id after, in id order, as members of the bulk, in one statement,
	// and returns how many it added and the last user id walked ("" when
	// none was left).
	WalkBulk(ctx context.Context, bulkID, institutionID, after string, limit int) (int, string, error)
	// BulkMembersAfter lists up to n member user ids after the user id
	// after, in order, in this transaction.
	BulkMembersAfter(ctx context.Context, bulkID, after string, n int) ([]string, error)
	// SetBulkMember records a member's outcome.
	SetBulkMember(ctx context.Context, m BulkMember) error
	// InsertBulkDelivery inserts a delivery row that belongs to a bulk.
	InsertBulkDelivery(ctx context.Context, d Delivery, bulkID string) (int64, error)
	// BulkQueued counts the bulk's deliveries not yet sent or failed.
	BulkQueued(ctx context.Context, bulkID string) (int, error)
	// BulkCounts counts the bulk's deliveries by outcome, as this
	// transaction sees them.
	BulkCounts(ctx context.Context, bulkID string) (BulkCounts, error)
	// CancelBulkDeliveries marks the bulk's queued deliveries failed
	// (BulkCancelledError) and returns how many.
	CancelBulkDeliveries(ctx context.Context, bulkID string, now time.Time) (int, error)
	// BulkLiveSends counts the bulk's send jobs that may still run: with
	// none, a delivery still queued has nothing left to send it (its
	// outcome could not be recorded).
	BulkLiveSends(ctx context.Context, bulkID string) (int, error)
}
