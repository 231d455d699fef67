// Package store owns persistence: the row types, the errors every backend
// returns, and the small interfaces the domain uses. Backends live in
// subpackages (sqlite, postgres) and are checked by one conformance suite
// (storetest), so they cannot drift. It does not run the job queue
// (internal/queue does): a transaction only queues jobs in itself,
// through the Inserter the queue owner hands a backend.
package store

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Sentinel errors. Backends wrap driver errors into these so the domain
// never sees a driver type.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")
)

// Institution is a tenant. Settings are kept as the JSON document the
// domain owns (reset.Settings), so adding a setting needs no migration.
type Institution struct {
	ID        string
	IsDefault bool
	Settings  []byte
	CreatedAt time.Time
	UpdatedAt time.Time
}

// User is one customer in an institution's directory.
type User struct {
	InstitutionID string
	ID            string
	Username      string
	Email         string
	Phone         string
	Status        string
	PasswordHash  string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// EmailChangedAt and PhoneChangedAt are when the value was last
	// replaced by a different one (not first set): the cooldown's start.
	EmailChangedAt time.Time
	PhoneChangedAt time.Time
	// LockedUntil blocks new sends after a "this wasn't me" dispute.
	LockedUntil time.Time
	// Facts are knowledge facts as keyed hashes (name → hex MAC).
	Facts map[string]string
}

// Client is an OAuth2 client. InstitutionID "*" means every institution.
type Client struct {
	ID            string
	InstitutionID string
	Name          string
	SecretHash    []byte
	Scopes        []string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// DisabledAt is when an operator disabled the client (zero: enabled).
	DisabledAt time.Time
	// OldSecretHash still authenticates until OldSecretUntil (client
	// rotate-secret --keep-old).
	OldSecretHash  []byte
	OldSecretUntil time.Time
}

// KeyedRecords are the stored records that depend on the secret key, for
// `resetd keys status`: what each was sealed or keyed under is in its
// leading key id (internal/seal).
type KeyedRecords struct {
	// OTPs are the MACs of live (unused, unexpired) OTPs.
	OTPs [][]byte
	// Facts are every stored fact MAC, hex.
	Facts []string
	// Jobs are queued jobs not yet finished.
	Jobs []QueuedJob
}

// Meta keys of the secret key (SPEC §9).
const (
	// MetaTrialKey holds the key `serve --dev` generated (a trial setup).
	MetaTrialKey = "secret_key"
	// MetaKeyCheck + a key id holds that key's check value, never the key.
	MetaKeyCheck = "key_check:"
)

// KeyInfo is what a database says about secret keys, read without
// changing it (see the backends' PeekKeys).
type KeyInfo struct {
	// Exists is false for a database resetd has not yet set up.
	Exists   bool
	TrialKey []byte
	// Checks are the check values of the keys the database has used.
	Checks [][]byte
	// SigningKey is the newest signing key (nil: none), to recognise the
	// key of a database that predates check values.
	SigningKey *SigningKey
}

// Fill takes the trial key and the check values from meta rows.
func (k *KeyInfo) Fill(meta map[string][]byte) {
	for key, v := range meta {
		switch {
		case key == MetaTrialKey:
			k.TrialKey = v
		case strings.HasPrefix(key, MetaKeyCheck):
			k.Checks = append(k.Checks, v)
		}
	}
}

// QueuedJob is one unfinished job's kind and JSON arguments.
type QueuedJob struct {
	ID   int64
	Kind string
	Args []byte
}

// SigningKey is a JWT signing key; Private is sealed with the server's
// secret key, never stored in clear.
type SigningKey struct {
	ID        string
	Alg       string
	Private   []byte
	Public    []byte
	CreatedAt time.Time
	// RetiredAt is set when a newer key took over signing; a retired key
	// still verifies until the tokens it signed have expired.
	RetiredAt time.Time
}

// Token is a single-use secret's record: only its hash is kept.
type Token struct {
	Hash          []byte
	InstitutionID string
	UserID        string
	Purpose       string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	UsedAt        time.Time
}

// OTP is a user's live one-time passcode: only its keyed hash is kept.
type OTP struct {
	InstitutionID string
	UserID        string
	MAC           []byte
	Channel       string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	Attempts      int
	MaxAttempts   int
	UsedAt        time.Time
}

// Approval is an admin reset waiting for a second client (maker-checker).
type Approval struct {
	ID            string
	InstitutionID string
	UserID        string
	Method        string
	RequestedBy   string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	ApprovedBy    string
	ApprovedAt    time.Time
}

// Delivery is the support-staff view of one outgoing message.
type Delivery struct {
	ID            int64
	InstitutionID string
	UserID        string
	Kind          string
	Channel       string
	Destination   string // masked
	State         string // queued, sent, failed
	Attempts      int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Delivery states.
const (
	DeliveryQueued = "queued"
	DeliverySent   = "sent"
	DeliveryFailed = "failed"
)

// AuditRecord is one audited action; it never holds a secret.
type AuditRecord struct {
	ID            int64
	Time          time.Time
	Action        string
	InstitutionID string
	UserID        string
	ClientID      string
	IP            string
	TransactionID string
	Outcome       string
}

// AuditFilter selects audit records; empty fields match everything.
type AuditFilter struct {
	InstitutionID string
	Since         time.Time
	Limit         int
}

// Job is a unit of background work a transaction queues: an email, an
// SMS, a webhook. Its method set is River's JobArgs, so the queue's own
// argument types are jobs, while this package stays free of River.
type Job interface {
	// Kind names the job's type; a worker is registered per kind.
	Kind() string
}

// Inserter puts a job into the queue inside a backend's own driver
// transaction of type TTx, so the job commits or vanishes with it. The
// queue owner (internal/queue) implements it; a backend calls it from
// Enqueue with its raw transaction.
type Inserter[TTx any] interface {
	InsertTx(ctx context.Context, tx TTx, job Job) error
}

// ReadTx is what the domain can read inside one transaction. View hands
// out only a ReadTx, so a read that tries to write does not compile.
//
// Count is a read and lives here. Inside Update (where the ReadTx is part
// of a Tx) it also holds its key until the transaction ends, so a
// read-then-add on one key (Count, then Hit) is never interleaved with
// another transaction's: no lost updates on caps. SQLite gets this from
// its single writer, PostgreSQL from an advisory lock on the key.
type ReadTx interface {
	Institution(ctx context.Context, id string) (Institution, error)
	DefaultInstitution(ctx context.Context) (Institution, error)

	User(ctx context.Context, institutionID, userID string) (User, error)
	UserByUsername(ctx context.Context, institutionID, username string) (User, error)
	// PasswordHistory returns up to n earlier hashes, newest first.
	PasswordHistory(ctx context.Context, institutionID, userID string, n int) ([]string, error)

	// LookupToken returns a token that is unused and unexpired at now.
	LookupToken(ctx context.Context, hash []byte, now time.Time) (Token, error)

	// Count returns the events counted against key in the window
	// containing now, without adding one (see above for Update).
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
}

// DirectoryWriter changes institutions and users.
type DirectoryWriter interface {
	PutInstitution(ctx context.Context, in Institution) error
	// LockInstitution reads an institution for update: no other writer
	// changes it before this transaction ends.
	LockInstitution(ctx context.Context, id string) (Institution, error)
	SetSettings(ctx context.Context, id string, settings []byte, now time.Time) error

	// PutUser inserts or replaces a user and reports whether it was new.
	// ErrConflict: the username belongs to another user.
	PutUser(ctx context.Context, u User) (created bool, err error)
	DeleteUser(ctx context.Context, institutionID, userID string) error
	SetPassword(ctx context.Context, institutionID, userID, hash string, now time.Time) error
	AddPasswordHistory(ctx context.Context, institutionID, userID, hash string, now time.Time, keep int) error
	// LockUser blocks new sends to a user until a time.
	LockUser(ctx context.Context, institutionID, userID string, until time.Time) error
	// SetFacts replaces a user's fact MACs (re-keyed under a new key).
	SetFacts(ctx context.Context, institutionID, userID string, facts map[string]string) error
}

// SecretWriter changes single-use secrets: reset tokens and OTPs.
type SecretWriter interface {
	InsertToken(ctx context.Context, t Token) error
	// ConsumeToken marks a live token used; of concurrent callers exactly
	// one gets it, the others ErrNotFound.
	ConsumeToken(ctx context.Context, hash []byte, now time.Time) (Token, error)
	// KillTokens ends the user's live tokens of the given purposes (all
	// purposes when none are given).
	KillTokens(ctx context.Context, institutionID, userID string, now time.Time, purposes ...string) error

	// PutOTP stores a user's OTP, replacing (killing) any older one.
	PutOTP(ctx context.Context, o OTP) error
	// LockOTP reads a user's OTP for update: concurrent verifications of
	// one OTP are serialised, so wrong tries are counted without loss.
	LockOTP(ctx context.Context, institutionID, userID string) (OTP, error)
	// UpdateOTP saves Attempts and UsedAt of an OTP read with LockOTP.
	UpdateOTP(ctx context.Context, o OTP) error
	// KillOTP ends a user's live OTP, if any.
	KillOTP(ctx context.Context, institutionID, userID string, now time.Time) error
}

// RecordWriter writes the records around an action: approvals, the
// outbox (delivery rows and their jobs), audit and rate counters.
type RecordWriter interface {
	InsertApproval(ctx context.Context, a Approval) error
	// LockApproval reads an approval for update.
	LockApproval(ctx context.Context, institutionID, id string) (Approval, error)
	MarkApproved(ctx context.Context, institutionID, id, approvedBy string, now time.Time) error

	InsertDelivery(ctx context.Context, d Delivery) (int64, error)
	// Enqueue queues a job in this transaction: it is worked only if the
	// transaction commits.
	Enqueue(ctx context.Context, job Job) error

	InsertAudit(ctx context.Context, r AuditRecord) error

	// Hit counts one event against key in the fixed window containing now
	// and returns the count so far in that window; inside Update it holds
	// key as Count does.
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
}

// Tx is what the domain can do inside one write transaction: every read
// of ReadTx plus the writes, grouped by area. Every write that must
// happen together (a token, its delivery row, its send job, its audit
// record) goes through one Tx, so they commit or vanish together. A
// backend fills all four parts with its one transaction; a Tx is a
// ReadTx, so read helpers take a ReadTx and serve View and Update alike.
type Tx struct {
	ReadTx
	DirectoryWriter
	SecretWriter
	RecordWriter
}

// Store is a backend: transactions plus the few operations that stand
// alone. Consumers that need less declare their own smaller interface.
type Store interface {
	// Update runs fn in a write transaction; an error from fn rolls back.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn against a consistent read-only view.
	View(ctx context.Context, fn func(ReadTx) error) error

	Client(ctx context.Context, id string) (Client, error)
	InsertClient(ctx context.Context, c Client) error
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	InsertSigningKey(ctx context.Context, k SigningKey) error
	ClientAdmin
	KeyAdmin
	// MetaSetIfAbsent stores value under key unless a value is there, and
	// returns the value that is stored (so replicas agree on one).
	MetaSetIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)

	// MarkDelivery records an attempt's outcome; a non-nil then is queued
	// in the same transaction (a delivery.failed event), so the state and
	// its consequence commit together.
	MarkDelivery(ctx context.Context, id int64, state string, attempts int, lastError string, now time.Time, then Job) error
	Deliveries(ctx context.Context, institutionID, userID string, limit int) ([]Delivery, error)
	AllDeliveries(ctx context.Context, failedOnly bool, limit int) ([]Delivery, error)
	Audit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
	// QueueStats counts deliveries not yet sent or failed, and the
	// creation time of the oldest (zero when none), in one query: a
	// metrics scrape should call it once for both gauges.
	QueueStats(ctx context.Context) (queued int, oldest time.Time, err error)

	Ping(ctx context.Context) error
	Close() error
}

// ClientAdmin is the operator's management of clients (SPEC §9).
type ClientAdmin interface {
	// Clients lists the clients not deleted, oldest first.
	Clients(ctx context.Context) ([]Client, error)
	// UpdateClient saves a client's name, secrets, scopes and state;
	// ErrNotFound when it does not exist or was deleted.
	UpdateClient(ctx context.Context, c Client) error
	// DeleteClient deletes a client. Its id stays behind as a tombstone
	// so RevokedClients still names it.
	DeleteClient(ctx context.Context, id string, now time.Time) error
	// RevokedClients lists the ids of disabled and deleted clients.
	RevokedClients(ctx context.Context) ([]string, error)
}

// KeyAdmin is what key rotation needs (SPEC §9): signing-key state, the
// meta records of keys, and the keyed records to count and re-seal.
type KeyAdmin interface {
	// UpdateSigningKey saves a signing key's sealed private key and
	// retirement time.
	UpdateSigningKey(ctx context.Context, k SigningKey) error
	// Meta reads one meta value (ErrNotFound when absent); MetaPut
	// stores one; MetaPrefix reads every value whose key has prefix.
	Meta(ctx context.Context, key string) ([]byte, error)
	MetaPut(ctx context.Context, key string, value []byte) error
	MetaPrefix(ctx context.Context, prefix string) (map[string][]byte, error)
	// KeyedRecords reads what depends on the secret key.
	KeyedRecords(ctx context.Context, now time.Time) (KeyedRecords, error)
	// SetJobArgs rewrites a job's arguments if it is still waiting to
	// run (not running or finished), and reports whether it did.
	SetJobArgs(ctx context.Context, id int64, args []byte) (bool, error)
}

// UsernameKey is the form usernames are unique and looked up in:
// case-insensitive, surrounding space ignored.
func UsernameKey(username string) string {
	return strings.ToLower(strings.TrimSpace(username))
}
