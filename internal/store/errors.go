package store

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// More sentinels of the lower layers, mapped to statuses in package api
// with ErrNotFound and ErrConflict. Queries return the drivers' errors as
// they are; Classify recognizes these among them.
var (
	// ErrUnavailable means the database cannot be reached right now
	// (connection refused or reset, the server shutting down or starting
	// up). It passes by itself: the API answers 503 with Retry-After and
	// the pool reconnects when the database is back.
	ErrUnavailable = errors.New("database unavailable")
	// ErrInvalidText means a value cannot be stored as text: PostgreSQL
	// refuses NUL characters and invalid UTF-8, which SQLite would keep.
	// The API checks its input so that both backends answer the same 400;
	// this is the net under those checks.
	ErrInvalidText = errors.New("value cannot be stored as text")
)

// Classify returns err wrapped with ErrUnavailable or ErrInvalidText when
// it is a failure of that kind, and err unchanged otherwise (nil for nil).
func Classify(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrUnavailable), errors.Is(err, ErrInvalidText):
		return err
	case isInvalidText(err):
		return fmt.Errorf("%w: %w", ErrInvalidText, err)
	case isUnreachable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

func isInvalidText(err error) bool {
	var pgErr *pgconn.PgError
	// 22021 character_not_in_repertoire ("invalid byte sequence for
	// encoding UTF8", NUL included), 22P05 untranslatable_character.
	return errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05")
}

// isUnreachable tells connection-level failures from every other error: an
// error the server sent about the query (a PgError outside the connection
// classes), a closed pool or a canceled context are not outages.
func isUnreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 connection exception; 57P01 admin_shutdown, 57P02
		// crash_shutdown, 57P03 cannot_connect_now (starting up).
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), pgconn.Timeout(err),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, driver.ErrBadConn), errors.Is(err, pgconn.ErrConnClosed):
		return true
	}
	return false
}

// DatabaseUnreachable is Classify's outage test narrowed to the database
// driver's own errors (a failed connect, a connection exception from the
// server, a broken pooled connection). Code that also talks to other
// servers, such as the chat engine, uses it so that an MCP server refusing
// connections is not taken for a database outage.
func DatabaseUnreachable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return isUnreachable(pgErr)
	}
	var connectErr *pgconn.ConnectError
	return errors.As(err, &connectErr) || errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, driver.ErrBadConn)
}
