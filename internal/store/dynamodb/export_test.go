package dynamodb

import "time"

// SetClock makes s read the time from now, for tests of expiry.
func SetClock(s *Store, now func() time.Time) { s.now = now }
