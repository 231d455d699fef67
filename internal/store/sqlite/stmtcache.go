package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"

	"modernc.org/sqlite"
)

// maxCachedStmts bounds each connection's statement cache. resetd and
// River issue a few dozen distinct statements; queries built with a
// variable number of placeholders add a few more.
const maxCachedStmts = 256

// Prepared-statement cache. database/sql prepares and finalises a
// statement for every Exec and Query that is not on a *sql.Stmt, and
// SQLite's parser was the largest single cost of a request under
// `resetd bench` (about 30% of CPU, most of it inside the write
// transaction that every writer waits for). Each connection keeps the
// statements it has run prepared, by their text, for River's queries as
// for resetd's own. Only single-use of a statement at a time is allowed:
// while rows of a cached query are open, the same text runs uncached.

type cachingConnector struct {
	driver.Connector
	uninterruptible bool
}

// newCachingConnector opens connections to dsn with a statement cache and
// the query planner's stability guarantee (stablePlans: a cached statement
// is not prepared again when other values are bound). With uninterruptible
// set (the write connection), a statement already running is not
// interrupted when its caller's context ends: SQLite
// answers an interrupted write by rolling back the whole transaction,
// and under group commit that transaction holds other callers' work too.
// database/sql still refuses to start a statement for a context that has
// ended, and write statements are short.
func newCachingConnector(dsn string, uninterruptible bool) (driver.Connector, error) {
	c, err := sqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return cachingConnector{c, uninterruptible}, nil
}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if err := stablePlans(conn); err != nil {
		conn.Close()
		return nil, err
	}
	return &cachingConn{Conn: conn, stmts: map[string]*cachedStmt{}, uninterruptible: c.uninterruptible}, nil
}

type cachedStmt struct {
	st   driver.Stmt
	busy bool
}

// cachingConn is used by one goroutine at a time (database/sql holds the
// connection's lock around every call), so it needs no lock of its own.
type cachingConn struct {
	driver.Conn
	stmts           map[string]*cachedStmt
	uninterruptible bool
}

func (c *cachingConn) ctx(ctx context.Context) context.Context {
	if c.uninterruptible {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

var errNoCache = errors.New("sqlite: statement not cacheable")

func (c *cachingConn) stmt(ctx context.Context, query string) (*cachedStmt, error) {
	if s, ok := c.stmts[query]; ok {
		if s.busy {
			return nil, errNoCache
		}
		return s, nil
	}
	if len(c.stmts) >= maxCachedStmts {
		return nil, errNoCache
	}
	pc, ok := c.Conn.(driver.ConnPrepareContext)
	if !ok {
		return nil, errNoCache
	}
	st, err := pc.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	_, okE := st.(driver.StmtExecContext)
	_, okQ := st.(driver.StmtQueryContext)
	if !okE || !okQ {
		_ = st.Close()
		return nil, errNoCache
	}
	s := &cachedStmt{st: st}
	c.stmts[query] = s
	return s, nil
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	ctx = c.ctx(ctx)
	s, err := c.stmt(ctx, query)
	if err != nil {
		if errors.Is(err, errNoCache) {
			return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
		}
		return nil, err
	}
	s.busy = true
	defer func() { s.busy = false }()
	return s.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	ctx = c.ctx(ctx)
	s, err := c.stmt(ctx, query)
	if err != nil {
		if errors.Is(err, errNoCache) {
			return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
		}
		return nil, err
	}
	s.busy = true
	rows, err := s.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		s.busy = false
		return nil, err
	}
	return &cachedRows{Rows: rows, s: s}, nil
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(c.ctx(ctx), query)
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	return c.Conn.(driver.Pinger).Ping(ctx)
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

func (c *cachingConn) IsValid() bool {
	return c.Conn.(driver.Validator).IsValid()
}

func (c *cachingConn) Close() error {
	for q, s := range c.stmts {
		_ = s.st.Close()
		delete(c.stmts, q)
	}
	return c.Conn.Close()
}

// cachedRows frees its statement for the next use when closed.
type cachedRows struct {
	driver.Rows
	s *cachedStmt
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	r.s.busy = false
	return err
}

var (
	_ driver.ExecerContext      = (*cachingConn)(nil)
	_ driver.QueryerContext     = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
)
