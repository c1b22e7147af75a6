package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	"github.com/labtrail/labtrail/internal/store"
)

// factQuery runs the fact reads of the delivery metrics on the driver's
// connection itself, below database/sql. A metric over every project reads
// tens of thousands of rows of up to ten columns, and database/sql scans
// each integer column through reflection and guards each row with locks
// of its own: together as much time as SQLite takes to produce the rows.
// Its rows scan only what the fact reads scan into: *string, *int64, *int,
// *float64 and sql.Scanner.
func (s *Store) factQuery(ctx context.Context, stmt string, args []any, read func(store.Rows) error) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return fmt.Errorf("argument %d: %w", i+1, err)
		}
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return conn.Raw(func(dc any) error {
		qc, ok := dc.(driver.QueryerContext)
		if !ok {
			return errors.New("the sqlite driver's connection does not query")
		}
		rows, err := qc.QueryContext(ctx, stmt, named)
		if err != nil {
			return err
		}
		r := &factRows{rows: rows, vals: make([]driver.Value, len(rows.Columns()))}
		err = read(r)
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		return err
	})
}

// factRows are a driver's rows as store.Rows.
type factRows struct {
	rows driver.Rows
	vals []driver.Value
	err  error
}

func (r *factRows) Next() bool {
	if r.err != nil {
		return false
	}
	if err := r.rows.Next(r.vals); err != nil {
		if err != io.EOF {
			r.err = err
		}
		return false
	}
	return true
}

func (r *factRows) Err() error { return r.err }

func (r *factRows) Scan(dest ...any) error {
	if len(dest) != len(r.vals) {
		return fmt.Errorf("scan: %d destinations for %d columns", len(dest), len(r.vals))
	}
	for i, d := range dest {
		v := r.vals[i]
		ok := true
		switch d := d.(type) {
		case *string:
			switch v := v.(type) {
			case string:
				*d = v
			case []byte:
				*d = string(v)
			default:
				ok = false
			}
		case *int64:
			*d, ok = v.(int64)
		case *int:
			var n int64
			n, ok = v.(int64)
			*d = int(n)
		case *float64:
			switch v := v.(type) {
			case float64:
				*d = v
			case int64:
				*d = float64(v)
			default:
				ok = false
			}
		case sql.Scanner:
			if err := d.Scan(v); err != nil {
				return fmt.Errorf("scan column %d: %w", i, err)
			}
		default:
			return fmt.Errorf("scan column %d: cannot scan into %T", i, d)
		}
		if !ok {
			return fmt.Errorf("scan column %d: cannot scan %T into %T", i, v, d)
		}
	}
	return nil
}
