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
	// ErrBadPosition: an audit position (a cursor) this backend did not
	// hand out.
	ErrBadPosition = errors.New("store: bad audit position")
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
	// Locale is the user's language as a BCP 47 tag ("fr", "de-AT");
	// "" when unknown. Messages and pages fall back to the institution's
	// default when it matches no language offered.
	Locale string
}

// Client is an OAuth2 client. InstitutionID "*" means every institution.
type Client struct {
	ID            string
	InstitutionID string
	Name          string
	SecretHash    []byte
	Scopes        []string
	CreatedAt     time.Time
	// AuthMethod is how the client authenticates at the token endpoint:
	// "" (a secret), "private_key_jwt" or "tls_client_auth" (SPEC §15).
	AuthMethod string
	// JWKS is the public JWK Set of a private_key_jwt client.
	JWKS []byte
	// TLSSubject is the certificate subject DN of a tls_client_auth client.
	TLSSubject string
	// RequireDPoP refuses bearer tokens for this client: only DPoP-bound.
	RequireDPoP bool
	UpdatedAt   time.Time
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
	// Messages are the sealed messages of deliveries still to be sent.
	Messages []Delivery
	// Tombstones are deleted users' sealed contacts (SPEC §10).
	Tombstones []Tombstone
}

// Tombstone is one deleted user's sealed contacts, as kept for the
// contact-change cooldown.
type Tombstone struct {
	InstitutionID, UserID string
	Sealed                []byte
	DeletedAt             time.Time
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
	State         string // queued, sent, logged, failed
	Attempts      int
	LastError     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Message is the sealed message while the delivery is still to be
	// sent (nil once it is sent, logged or failed), sealed to MessageRef.
	// InsertDelivery writes both; only DeliveryMessage and KeyedRecords
	// read them, never a listing.
	MessageRef, Message []byte
}

// DeliveryFinal reports whether state ends a delivery (nothing is sent
// after it): its message is cleared then.
func DeliveryFinal(state string) bool {
	return state == DeliverySent || state == DeliveryFailed || state == DeliveryLogged
}

// Delivery states.
const (
	DeliveryQueued = "queued"
	DeliverySent   = "sent"
	DeliveryFailed = "failed"
	// DeliveryLogged is a message serve --dev wrote to its log instead of
	// sending: nobody received it.
	DeliveryLogged = "logged"
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
	// Count is how many requests an aggregated failure record stands for;
	// 0 on insert is 1.
	Count int
	// Pos is the record's place in the log, opaque outside its backend:
	// AuditFilter.After continues after it.
	Pos string
}

// AuditFilter selects a page of audit records, oldest first; empty fields
// match everything.
type AuditFilter struct {
	InstitutionID string
	// Since is inclusive, Until exclusive (zero: no bound).
	Since, Until time.Time
	// After is the Pos of the last record of the previous page; "" starts
	// at the beginning. Following After from page to page lists every
	// record once, however writers commit meanwhile: a backend lists a
	// record only when no record before it can still appear.
	After string
	// Limit is the page size; 0 is 1000.
	Limit int
}

// PurgeKind names what a purge deletes.
type PurgeKind string

// The kinds of rows the purge deletes (SPEC §12), and when a row is past:
// tokens and OTPs that expired or were used, approvals that expired, rate
// counters whose window began, deliveries created and audit records
// written, before the cutoff.
const (
	PurgeTokens       PurgeKind = "tokens"
	PurgeOTPs         PurgeKind = "otps"
	PurgeApprovals    PurgeKind = "approvals"
	PurgeRateCounters PurgeKind = "rateCounters"
	PurgeDeliveries   PurgeKind = "deliveries"
	PurgeAudit        PurgeKind = "audit"
	// PurgeBulkMembers and PurgeBulks: the member rows of bulk forced
	// resets finished before the cutoff, then the bulks left without
	// members.
	PurgeBulkMembers PurgeKind = "bulkMembers"
	PurgeBulks       PurgeKind = "bulks"
)

// PurgeKinds is every kind, in the order a purge runs them.
func PurgeKinds() []PurgeKind {
	return []PurgeKind{PurgeTokens, PurgeOTPs, PurgeApprovals, PurgeRateCounters, PurgeDeliveries, PurgeAudit, PurgeBulkMembers, PurgeBulks}
}

// Erasure names what EraseUser replaces and deletes.
type Erasure struct {
	InstitutionID, UserID string
	Pseudonym             string
	CounterKeys           []string
}

// Job is a unit of background work a transaction queues: an email, an
// SMS, a webhook. Its method set is River's JobArgs, so the queue's own
// argument types are jobs, while this package stays free of River.
type Job interface {
	// Kind names the job's type; a worker is registered per kind.
	Kind() string
}

// Batchable is a job that a backend may queue as one with the jobs of its
// kind that commit in the same transaction (SQLite's group commit joins
// many callers' writes in one): Batch makes the jobs that do the work of
// jobs, which are all of the Batchable's own type. A backend that does not
// batch queues each job as it comes. Nothing may read a batchable job back
// in the transaction that queued it: it is inserted as the transaction
// commits.
type Batchable interface {
	Job
	Batch(jobs []Job) []Job
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
	// InstitutionUser reads an institution and one of its users in one
	// query; ErrNotFound when either is missing.
	InstitutionUser(ctx context.Context, institutionID, userID string) (Institution, User, error)
	UserByUsername(ctx context.Context, institutionID, username string) (User, error)
	// UsersByID returns the users among ids that exist, by id, in one
	// query (an import reads its batch's stored rows with it).
	UsersByID(ctx context.Context, institutionID string, ids []string) (map[string]User, error)
	// UserAndUsernameOwner reads, in one query, the user userID (nil when
	// none) and the id of the user whose username is username ("" when
	// none): an import's per-row lookup.
	UserAndUsernameOwner(ctx context.Context, institutionID, userID, username string) (*User, string, error)
	// PasswordHistory returns up to n earlier hashes, newest first.
	PasswordHistory(ctx context.Context, institutionID, userID string, n int) ([]string, error)

	// LookupToken returns a token that is unused and unexpired at now.
	LookupToken(ctx context.Context, hash []byte, now time.Time) (Token, error)
	// TokenInstitution returns the institution of a token in any state
	// (live, used, expired) while its row is kept: the pages of a dead
	// link wear its institution's brand.
	TokenInstitution(ctx context.Context, hash []byte) (string, error)

	// Count returns the events counted against key in the sliding window
	// (now−window, now], without adding one (see above for Update): every
	// cap and window slides (SPEC §10).
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	// Oldest returns the time of the oldest event in key's sliding window
	// after skipping skip of them (zero when there are not that many): a
	// refused caller may retry once it has left the window.
	Oldest(ctx context.Context, key string, window time.Duration, now time.Time, skip int) (time.Time, error)

	// LiveTokens counts the user's unused, unexpired tokens of the given
	// purposes (all purposes when none are given).
	LiveTokens(ctx context.Context, institutionID, userID string, now time.Time, purposes ...string) (int, error)
	// Tombstone reads a deleted user's sealed contacts (ErrNotFound: none).
	Tombstone(ctx context.Context, institutionID, userID string) (sealed []byte, deletedAt time.Time, err error)
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
	// EraseUser replaces a user's id by e.Pseudonym in every other row
	// that names it — audit, deliveries (whose masked destination and last
	// error are cleared), tokens, approvals, queued webhook events — and
	// deletes the user's OTP, any tombstone of theirs, the send jobs'
	// recorded errors and the rate events of e.CounterKeys (SPEC §12).
	// DeleteUser then removes the user.
	EraseUser(ctx context.Context, e Erasure) error
	SetPassword(ctx context.Context, institutionID, userID, hash string, now time.Time) error
	// AddPasswordHistory records hash and keeps the newest keep entries;
	// keep < 0 keeps every entry (nothing to trim, e.g. for a new user).
	AddPasswordHistory(ctx context.Context, institutionID, userID, hash string, now time.Time, keep int) error
	// RehashPassword replaces the hash old by new in the user's row and
	// password history, only where old is still what is stored, so a
	// concurrent change wins over the upgrade of the password it replaced.
	// It reports whether the user's current hash was replaced.
	RehashPassword(ctx context.Context, institutionID, userID, old, new string) (bool, error)
	// LockUser blocks new sends to a user until a time.
	LockUser(ctx context.Context, institutionID, userID string, until time.Time) error
	// SetFacts replaces a user's fact MACs (re-keyed under a new key).
	SetFacts(ctx context.Context, institutionID, userID string, facts map[string]string) error
}

// SecretWriter changes single-use secrets: reset tokens and OTPs.
type SecretWriter interface {
	InsertToken(ctx context.Context, t Token) error
	// InsertTokens inserts several tokens in one statement (a send's link
	// and its dispute token): all of them, or — ErrConflict when a hash
	// is taken — none.
	InsertTokens(ctx context.Context, ts ...Token) error
	// ConsumeToken marks a live token used; of concurrent callers exactly
	// one gets it, the others ErrNotFound.
	ConsumeToken(ctx context.Context, hash []byte, now time.Time) (Token, error)
	// KillTokens ends the user's live tokens of the given purposes (all
	// purposes when none are given).
	KillTokens(ctx context.Context, institutionID, userID string, now time.Time, purposes ...string) error
	// ReplaceTokens is KillTokens of the user's tokens of the purposes
	// kill (at least one), then InsertTokens of toks — in one statement
	// where the backend can (a send's older links die as its new link and
	// dispute token are written). ErrConflict as InsertTokens; the caller's
	// transaction then rolls back the kill with it.
	ReplaceTokens(ctx context.Context, institutionID, userID string, now time.Time, kill []string, toks ...Token) error

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

	// Hit counts one event against key at now and returns how many were
	// counted in the sliding window (now−window, now]; events older than
	// window are forgotten (a key is always used with one window). Inside
	// Update it holds key as Count does.
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	// ClearCounter forgets every event counted against key.
	ClearCounter(ctx context.Context, key string) error

	// PutTombstone keeps a deleted user's contacts (sealed by the domain)
	// with the time of the deletion, replacing an older one.
	PutTombstone(ctx context.Context, institutionID, userID string, sealed []byte, deletedAt time.Time) error
	// DeleteTombstone forgets a deleted user's contacts.
	DeleteTombstone(ctx context.Context, institutionID, userID string) error
	// PruneTombstones forgets an institution's tombstones of deletions
	// before a time.
	PruneTombstones(ctx context.Context, institutionID string, before time.Time) error
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
	// Bulk holds the writes of bulk forced resets (bulk.go).
	Bulk BulkWriter
}

// Store is a backend as its consumers see it: one value holding the four
// small interfaces every backend implements, so no consumer depends on
// more than it uses and no interface grows past a handful of methods
// (none has more than 15). Backends are wrapped with Of.
type Store struct {
	Transactor
	Credentials
	Outbox
	KeyAdmin
}

// Of wraps a backend's four faces into a Store.
func Of(t Transactor, c Credentials, o Outbox, k KeyAdmin) Store {
	return Store{Transactor: t, Credentials: c, Outbox: o, KeyAdmin: k}
}

// Transactor runs transactions and answers for the connection.
type Transactor interface {
	// Update runs fn in a write transaction; an error from fn rolls back.
	Update(ctx context.Context, fn func(Tx) error) error
	// View runs fn against a consistent read-only view.
	View(ctx context.Context, fn func(ReadTx) error) error
	// SerialWrites reports whether write transactions run one at a time
	// (SQLite's one writer): a flow then does its slow preparation — a
	// render — before its write transaction rather than in it.
	SerialWrites() bool
	// InstitutionUser reads an institution and one of its users in one
	// statement, outside any transaction: ReadTx.InstitutionUser without
	// the round trips of beginning and ending one, for a flow that reads
	// them once before its write transaction reads them again.
	InstitutionUser(ctx context.Context, institutionID, userID string) (Institution, User, error)
	Ping(ctx context.Context) error
	Close() error
}

// Credentials keeps OAuth clients, signing keys and server-wide values.
type Credentials interface {
	Client(ctx context.Context, id string) (Client, error)
	InsertClient(ctx context.Context, c Client) error
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	InsertSigningKey(ctx context.Context, k SigningKey) error
	ClientAdmin
	// MetaSetIfAbsent stores value under key unless a value is there, and
	// returns the value that is stored (so replicas agree on one).
	MetaSetIfAbsent(ctx context.Context, key string, value []byte) ([]byte, error)
	// UseOnce records key as used until expires; ErrConflict when it is
	// already recorded and not yet expired. Every replica sees the same
	// record, so a value replayed to another replica is refused too.
	// Expired records are swept as new ones arrive.
	UseOnce(ctx context.Context, key string, expires, now time.Time) error
}

// Outbox records deliveries and reads the listings and counts that span
// more than one transaction's worth of rows.
type Outbox interface {
	// MarkDelivery records an attempt's outcome; a non-nil then is queued
	// in the same transaction (a delivery.failed event), so the state and
	// its consequence commit together.
	MarkDelivery(ctx context.Context, id int64, state string, attempts int, lastError string, now time.Time, then Job) error
	// DeliveryMessage reads a delivery with its sealed message, for the
	// worker that sends it; ErrNotFound when there is no such delivery or
	// its message is gone (sent, failed, cancelled).
	DeliveryMessage(ctx context.Context, id int64) (Delivery, error)
	Deliveries(ctx context.Context, institutionID, userID string, limit int) ([]Delivery, error)
	AllDeliveries(ctx context.Context, failedOnly bool, limit int) ([]Delivery, error)
	Audit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
	// Purge deletes at most limit rows of kind that are past cutoff, in
	// one short transaction, and returns how many it deleted; with dryRun
	// it deletes nothing and counts every such row.
	Purge(ctx context.Context, kind PurgeKind, cutoff time.Time, limit int, dryRun bool) (int, error)
	// Forget makes what was deleted unrecoverable from the database files
	// where the backend can: SQLite (which zeroes deleted content, its
	// secure_delete) checkpoints and truncates its write-ahead log.
	Forget(ctx context.Context) error
	// QueueStats counts deliveries not yet sent or failed, and the
	// creation time of the oldest (zero when none), in one query: a
	// metrics scrape should call it once for both gauges.
	QueueStats(ctx context.Context) (queued int, oldest time.Time, err error)
	// PasswordSchemes counts users by the scheme of their password hash
	// (none, argon2id, argon2id-old-params, argon2i, bcrypt, pbkdf2-sha256,
	// pbkdf2-sha512, scrypt, other); current is the PHC prefix of an up-to-date
	// hash, e.g. "$argon2id$v=19$m=19456,t=2,p=1$".
	PasswordSchemes(ctx context.Context, current string) (map[string]int, error)
	// BulkReader reads bulk forced resets (bulk.go).
	BulkReader
}

// PoolStat is one connection pool's state (metrics).
type PoolStat struct {
	Pool         string
	Max          int
	InUse, Idle  int
	WaitCount    int64
	WaitDuration time.Duration
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
	// SetDeliveryMessage replaces the sealed message of a delivery still
	// to be sent, and reports whether it did.
	SetDeliveryMessage(ctx context.Context, id int64, sealed []byte) (bool, error)
}

// UsernameKey is the form usernames are unique and looked up in:
// case-insensitive, surrounding space ignored.
func UsernameKey(username string) string {
	return strings.ToLower(strings.TrimSpace(username))
}

// PasswordSchemesSQL is the query both backends run for PasswordSchemes: the
// same text in both dialects, with the current prefix as its one parameter
// (written ? here; PostgreSQL's copy replaces it with $1).
const PasswordSchemesSQL = `SELECT CASE
	WHEN password_hash = '' THEN 'none'
	WHEN substr(password_hash, 1, length(?)) = ? THEN 'argon2id'
	WHEN password_hash LIKE '$argon2id$%' THEN 'argon2id-old-params'
	WHEN password_hash LIKE '$argon2i$%' THEN 'argon2i'
	WHEN password_hash LIKE '$2a$%' OR password_hash LIKE '$2b$%' OR password_hash LIKE '$2y$%' THEN 'bcrypt'
	WHEN password_hash LIKE '$pbkdf2-sha256$%' THEN 'pbkdf2-sha256'
	WHEN password_hash LIKE '$pbkdf2-sha512$%' THEN 'pbkdf2-sha512'
	WHEN password_hash LIKE '$scrypt$%' THEN 'scrypt'
	ELSE 'other' END AS scheme, count(*) FROM users GROUP BY 1`
