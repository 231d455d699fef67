package reset

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/resetd/resetd/internal/delivery"
	"github.com/resetd/resetd/internal/store"
)

// A bulk forced reset sends every user it names (a list, or every user of
// the institution) a reset link, as an admin reset would, at the
// institution's bulkRatePerSecond. Starting one writes the bulk's row
// (and the members of a list) and queues its jobs: the walk adds the
// institution's users as members in keyset-paginated batches, and the
// paced sending (bulkrun.go) decides each member when its turn comes —
// skipped for a reason, or given a link, a delivery row and a send job,
// all in one transaction with the bulk's cursor. A link is made only when
// its message is about to go out: a link made at the start of a bulk that
// takes hours would expire before it was sent, and the checks (disabled,
// locked, cooldown) hold for the moment of sending.

// Bounds of a bulk.
const (
	// MaxBulkUsers bounds the userIds of one request (all: true has no
	// bound).
	MaxBulkUsers = 100_000
	// MinBulkRate and MaxBulkRate bound bulkRatePerSecond.
	MinBulkRate = 1
	MaxBulkRate = 10_000
	// maxIdempotencyKey bounds an Idempotency-Key (bytes).
	maxIdempotencyKey = 200
	// bulkMemberChunk is how many listed members one statement adds.
	bulkMemberChunk = 10_000
)

// Skip reasons of a bulk's members, as progress names them.
const (
	SkipNoContact   = "noContact"
	SkipDisabled    = "disabled"
	SkipLocked      = "locked"
	SkipCooldown    = "cooldown"
	SkipNotFound    = "notFound"
	SkipSMSRefused  = "smsRefused"
	SkipRateLimited = "rateLimited"
)

// Errors of bulks.
var (
	// ErrTooManyUsers: more than MaxBulkUsers userIds (413).
	ErrTooManyUsers = errors.New("reset: too many users in one bulk request")
	// ErrIdempotencyMismatch: an Idempotency-Key used before with another
	// request (422).
	ErrIdempotencyMismatch = errors.New("reset: idempotency key reused with another request")
	// ErrBulkNeedsApproval: adminResetApproval is on, and a bulk cannot
	// collect a second client's approval per user (409).
	ErrBulkNeedsApproval = errors.New("reset: bulk resets need approval here")
)

// BulkRunningError refuses a bulk while another of the institution runs
// (409): the institution's rate is one budget.
type BulkRunningError struct{ ID string }

func (e *BulkRunningError) Error() string { return "reset: bulk " + e.ID + " is still running" }

// BulkRequest is what starts a bulk.
type BulkRequest struct {
	Method string
	// All: every user of the institution; else UserIDs (ListGiven says
	// the list was given at all, so an empty one is refused by name).
	All       bool
	UserIDs   []string
	ListGiven bool
	// Rate overrides bulkRatePerSecond for this bulk (0: follow the
	// setting, also when it changes while the bulk runs).
	Rate int
	// IdempotencyKey makes a retried request answer with the bulk the
	// first one started.
	IdempotencyKey string
	// Operator: the request comes from the operator's CLI on the
	// database, which may start a bulk although adminResetApproval is on.
	Operator bool
}

// BulkSkipped counts the members not sent to, by reason.
type BulkSkipped struct {
	NoContact   int `json:"noContact"`
	Disabled    int `json:"disabled"`
	Locked      int `json:"locked"`
	Cooldown    int `json:"cooldown"`
	NotFound    int `json:"notFound"`
	SMSRefused  int `json:"smsRefused"`
	RateLimited int `json:"rateLimited"`
}

// Total is every skipped member.
func (k BulkSkipped) Total() int {
	return k.NoContact + k.Disabled + k.Locked + k.Cooldown + k.NotFound + k.SMSRefused + k.RateLimited
}

func skippedOf(m map[string]int) BulkSkipped {
	return BulkSkipped{NoContact: m[SkipNoContact], Disabled: m[SkipDisabled], Locked: m[SkipLocked], Cooldown: m[SkipCooldown],
		NotFound: m[SkipNotFound], SMSRefused: m[SkipSMSRefused], RateLimited: m[SkipRateLimited]}
}

// BulkStatus is a bulk's progress. Total = Queued + Sent + Failed +
// Skipped.Total() + Cancelled; Total grows while an all-users bulk walks
// the directory (Walked false).
type BulkStatus struct {
	ID            string `json:"bulkId"`
	InstitutionID string `json:"institutionId"`
	Method        string `json:"method"`
	All           bool   `json:"all"`
	// State is running, done or cancelled.
	State  string `json:"state"`
	Walked bool   `json:"walked"`
	// RatePerSecond is the rate the bulk sends at now.
	RatePerSecond int         `json:"ratePerSecond"`
	Total         int         `json:"total"`
	Queued        int         `json:"queued"`
	Sent          int         `json:"sent"`
	Failed        int         `json:"failed"`
	Cancelled     int         `json:"cancelled"`
	Skipped       BulkSkipped `json:"skipped"`
	CreatedAt     time.Time   `json:"createdAt"`
	UpdatedAt     time.Time   `json:"updatedAt"`
	FinishedAt    *time.Time  `json:"finishedAt,omitempty"`
}

// Finished reports whether the bulk will change no more.
func (b BulkStatus) Finished() bool { return b.State != store.BulkRunning }

// StartBulk starts a bulk forced reset and returns its id; created is
// false when the request is a retry (the same Idempotency-Key and
// request) of one that started it.
func (s *Service) StartBulk(ctx context.Context, a Actor, institutionID string, req BulkRequest) (id string, created bool, err error) {
	if err := checkIDs(institutionID); err != nil {
		return "", false, err
	}
	ids, err := checkBulkRequest(req)
	if err != nil {
		return "", false, err
	}
	if req.Method == delivery.ChannelSMS && s.noSMS {
		return "", false, ErrChannelUnavailable
	}
	hash := bulkRequestHash(req, ids)
	err = s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		st, err := s.settingsIn(ctx, tx, institutionID)
		if err != nil {
			return err
		}
		if req.IdempotencyKey != "" {
			prior, err := tx.Bulk.BulkByKey(ctx, institutionID, a.ClientID, req.IdempotencyKey)
			switch {
			case err == nil:
				if subtle.ConstantTimeCompare(prior.RequestHash, hash) != 1 {
					return ErrIdempotencyMismatch
				}
				id = prior.ID
				return nil
			case !isNotFound(err):
				return err
			}
		}
		if st.AdminResetApproval && !req.Operator {
			return ErrBulkNeedsApproval
		}
		if running, err := tx.Bulk.RunningBulk(ctx, institutionID); err == nil {
			return &BulkRunningError{ID: running.ID}
		} else if !isNotFound(err) {
			return err
		}
		b := store.Bulk{ID: uuid.NewString(), InstitutionID: institutionID, Method: req.Method, All: req.All, State: store.BulkRunning,
			Rate: req.Rate, ClientID: a.ClientID, IdempotencyKey: req.IdempotencyKey, RequestHash: hash, Walked: !req.All,
			Skipped: map[string]int{}, NextAt: time.Now(), CreatedAt: now, UpdatedAt: now}
		if err := tx.Bulk.InsertBulk(ctx, b); err != nil {
			if errors.Is(err, store.ErrConflict) {
				// A concurrent request committed first (PostgreSQL): a
				// retry with the same key, or another bulk.
				return s.bulkRace(ctx, tx, a, institutionID, req.IdempotencyKey, hash, &id)
			}
			return err
		}
		for i := 0; i < len(ids); i += bulkMemberChunk {
			n, err := tx.Bulk.AddBulkMembers(ctx, b.ID, ids[i:min(i+bulkMemberChunk, len(ids))])
			if err != nil {
				return err
			}
			b.Total += n
		}
		if b.Total > 0 {
			if err := tx.Bulk.SaveBulk(ctx, b); err != nil {
				return err
			}
		}
		if req.All {
			if err := tx.Enqueue(ctx, delivery.BulkRunArgs{InstitutionID: institutionID, BulkID: b.ID, Step: delivery.BulkStepWalk}); err != nil {
				return err
			}
		}
		if err := tx.Enqueue(ctx, delivery.BulkRunArgs{InstitutionID: institutionID, BulkID: b.ID, Step: delivery.BulkStepSend}); err != nil {
			return err
		}
		users := "all"
		if !req.All {
			users = fmt.Sprint(b.Total)
		}
		id, created = b.ID, true
		return s.audit(ctx, tx, now, a, "reset.bulk.start", institutionID, "", fmt.Sprintf("bulk=%s method=%s users=%s", b.ID, req.Method, users))
	})
	if err != nil {
		return "", false, err
	}
	return id, created, nil
}

// bulkRace answers a start that lost to a concurrent one: the bulk of the
// same Idempotency-Key and request (id is set), or the running bulk.
func (s *Service) bulkRace(ctx context.Context, tx store.Tx, a Actor, institutionID, key string, hash []byte, id *string) error {
	if key != "" {
		if prior, err := tx.Bulk.BulkByKey(ctx, institutionID, a.ClientID, key); err == nil {
			if subtle.ConstantTimeCompare(prior.RequestHash, hash) != 1 {
				return ErrIdempotencyMismatch
			}
			*id = prior.ID
			return nil
		}
	}
	running, err := tx.Bulk.RunningBulk(ctx, institutionID)
	if err != nil {
		return fmt.Errorf("reset: start bulk: %w", err)
	}
	return &BulkRunningError{ID: running.ID}
}

// checkBulkRequest validates a request and returns its user ids without
// repeats, in the order given.
func checkBulkRequest(req BulkRequest) ([]string, error) {
	if req.Method != delivery.ChannelEmail && req.Method != delivery.ChannelSMS {
		return nil, invalid("method", `method must be "email" or "sms"`)
	}
	switch {
	case req.All && req.ListGiven:
		return nil, invalid("all", "give either userIds or all: true, not both")
	case !req.All && !req.ListGiven:
		return nil, invalid("userIds", "give userIds (a list of user ids) or all: true")
	case req.ListGiven && len(req.UserIDs) == 0:
		return nil, invalid("userIds", "userIds must not be empty")
	case len(req.UserIDs) > MaxBulkUsers:
		return nil, ErrTooManyUsers
	}
	if req.Rate != 0 && (req.Rate < MinBulkRate || req.Rate > MaxBulkRate) {
		return nil, invalid("rate", fmt.Sprintf("the rate must be between %d and %d per second", MinBulkRate, MaxBulkRate))
	}
	if k := req.IdempotencyKey; len(k) > maxIdempotencyKey || strings.IndexFunc(k, func(r rune) bool { return r < 0x21 || r > 0x7e }) >= 0 {
		return nil, invalid("Idempotency-Key", fmt.Sprintf("the Idempotency-Key header must be at most %d printable ASCII characters", maxIdempotencyKey))
	}
	seen := make(map[string]struct{}, len(req.UserIDs))
	ids := make([]string, 0, len(req.UserIDs))
	for i, u := range req.UserIDs {
		if !ValidID(u) {
			return nil, invalid("userIds", fmt.Sprintf("userIds[%d] is not a valid user id", i))
		}
		if _, dup := seen[u]; !dup {
			seen[u] = struct{}{}
			ids = append(ids, u)
		}
	}
	return ids, nil
}

// bulkRequestHash identifies a request for its Idempotency-Key.
func bulkRequestHash(req BulkRequest, ids []string) []byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%t\n%d\n", req.Method, req.All, req.Rate)
	for _, id := range ids {
		h.Write([]byte(id))
		h.Write([]byte{'\n'})
	}
	return h.Sum(nil)
}

// validBulkID spares the database ids that cannot exist.
func validBulkID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// BulkStatus reads a bulk's progress. Another institution's bulk is not
// found, as an unknown one is.
func (s *Service) BulkStatus(ctx context.Context, institutionID, id string) (BulkStatus, error) {
	if err := checkIDs(institutionID); err != nil {
		return BulkStatus{}, err
	}
	if !validBulkID(id) {
		return BulkStatus{}, &NotFoundError{What: "bulk"}
	}
	var st Settings
	if err := s.store.View(ctx, func(tx store.ReadTx) (err error) {
		st, err = s.settingsIn(ctx, tx, institutionID)
		return err
	}); err != nil {
		return BulkStatus{}, err
	}
	b, err := s.store.Bulk(ctx, institutionID, id)
	if err != nil {
		return BulkStatus{}, notFound("bulk", err)
	}
	c, err := s.store.BulkCounts(ctx, b.ID)
	if err != nil {
		return BulkStatus{}, err
	}
	return bulkStatus(b, c, st), nil
}

func bulkStatus(b store.Bulk, c store.BulkCounts, st Settings) BulkStatus {
	out := BulkStatus{ID: b.ID, InstitutionID: b.InstitutionID, Method: b.Method, All: b.All, State: b.State, Walked: b.Walked,
		RatePerSecond: bulkRate(b, st), Total: b.Total, Skipped: skippedOf(b.Skipped), CreatedAt: b.CreatedAt, UpdatedAt: b.UpdatedAt,
		Sent: c.Sent + c.Logged, Failed: c.Failed, Cancelled: c.Cancelled, Queued: c.Queued}
	// Members not yet decided wait, or were cancelled with their bulk.
	// Issued members are counted from their deliveries, read after the
	// bulk's row: a batch that commits between the two reads moves
	// members from undecided to issued in the same figures, so the
	// progress always adds up to the total.
	issued := c.Queued + c.Sent + c.Logged + c.Failed + c.Cancelled
	undecided := max(b.Total-issued-out.Skipped.Total(), 0)
	if b.State == store.BulkCancelled {
		out.Cancelled += undecided
	} else {
		out.Queued += undecided
	}
	if !b.FinishedAt.IsZero() {
		f := b.FinishedAt
		out.FinishedAt = &f
	}
	return out
}

// bulkRate is the rate a bulk sends at: its own, or the institution's.
func bulkRate(b store.Bulk, st Settings) int {
	if b.Rate > 0 {
		return b.Rate
	}
	return max(st.BulkRatePerSecond, MinBulkRate)
}

// CancelBulk stops a bulk: no member not yet decided gets a message, and
// its messages still queued are not sent (a message being sent at that
// moment may still go out). Cancelling a finished bulk changes nothing.
func (s *Service) CancelBulk(ctx context.Context, a Actor, institutionID, id string) (BulkStatus, error) {
	if err := checkIDs(institutionID); err != nil {
		return BulkStatus{}, err
	}
	if !validBulkID(id) {
		return BulkStatus{}, &NotFoundError{What: "bulk"}
	}
	err := s.store.Update(ctx, func(tx store.Tx) error {
		now := s.now()
		if _, err := s.settingsIn(ctx, tx, institutionID); err != nil {
			return err
		}
		b, err := tx.Bulk.LockBulk(ctx, institutionID, id)
		if err != nil {
			return notFound("bulk", err)
		}
		if b.State != store.BulkRunning {
			return nil
		}
		n, err := tx.Bulk.CancelBulkDeliveries(ctx, b.ID, now)
		if err != nil {
			return err
		}
		undecided := max(b.Total-b.Issued-skippedOf(b.Skipped).Total(), 0)
		b.State, b.UpdatedAt, b.FinishedAt = store.BulkCancelled, now, now
		if err := tx.Bulk.SaveBulk(ctx, b); err != nil {
			return err
		}
		return s.audit(ctx, tx, now, a, "reset.bulk.cancel", institutionID, "",
			fmt.Sprintf("bulk=%s cancelled=%d issued=%d", b.ID, n+undecided, b.Issued-n))
	})
	if err != nil {
		return BulkStatus{}, err
	}
	return s.BulkStatus(ctx, institutionID, id)
}
