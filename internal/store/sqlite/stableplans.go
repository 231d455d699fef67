package sqlite

import (
	"database/sql/driver"
	"fmt"
	"reflect"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// stablePlans turns on SQLite's query planner stability guarantee
// (SQLITE_DBCONFIG_ENABLE_QPSG) on a new connection: a prepared statement
// keeps the plan it was prepared with, whatever values are later bound to
// it. Without it SQLite plans some statements with the values bound at
// the time, and prepares them again whenever those values change. River's
// fetch is one: its LIMIT is the producer's free worker slots, which
// differ from one poll to the next and between the queues sharing the
// statement, so the write connection parsed and planned that statement
// again on nearly every poll (~1 ms each under load, holding the one
// write connection).
//
// The driver has no setting for it, so this reads the connection's
// database handle from the driver's connection value and fails, rather
// than going on without the guarantee, when a driver upgrade moves it.
func stablePlans(conn driver.Conn) error {
	v := reflect.ValueOf(conn)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("sqlite: stable plans: unexpected driver connection %T", conn)
	}
	h := v.Elem().FieldByName("db")
	if !h.IsValid() || h.Kind() != reflect.Uintptr || h.Uint() == 0 {
		return fmt.Errorf("sqlite: stable plans: driver connection %T has no database handle", conn)
	}
	tls := libc.NewTLS()
	defer tls.Close()
	// sqlite3_db_config(db, op, int on, int *out): the two arguments as a
	// C variadic list, 8 bytes a slot.
	va := libc.Xmalloc(tls, 16)
	if va == 0 {
		return fmt.Errorf("sqlite: stable plans: out of memory")
	}
	defer libc.Xfree(tls, va)
	if rc := sqlite3.Xsqlite3_db_config(tls, uintptr(h.Uint()), sqlite3.SQLITE_DBCONFIG_ENABLE_QPSG, libc.VaList(va, int32(1), uintptr(0))); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite: stable plans: sqlite3_db_config returned %d", rc)
	}
	return nil
}
