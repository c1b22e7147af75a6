package metrics

import (
	"encoding/json"
	"time"
)

// Level is a DORA performance level (DORA 2023 report). LevelNone, for a
// figure without data, marshals as JSON null.
type Level string

// The levels.
const (
	LevelNone   Level = ""
	LevelElite  Level = "elite"
	LevelHigh   Level = "high"
	LevelMedium Level = "medium"
	LevelLow    Level = "low"
)

// MarshalJSON writes LevelNone as null.
func (l Level) MarshalJSON() ([]byte, error) {
	if l == LevelNone {
		return []byte("null"), nil
	}
	return json.Marshal(string(l))
}

const day = 24 * time.Hour

// DeploymentFrequencyLevel: at least once a day elite, once a week high,
// once a month (30 days) medium, else low.
func DeploymentFrequencyLevel(perDay float64) Level {
	switch {
	case perDay >= 1:
		return LevelElite
	case perDay >= 1.0/7:
		return LevelHigh
	case perDay >= 1.0/30:
		return LevelMedium
	}
	return LevelLow
}

// LeadTimeLevel, of the median lead time in seconds: under a day elite,
// under a week high, under 30 days medium, else low.
func LeadTimeLevel(medianSeconds float64) Level {
	switch {
	case medianSeconds < day.Seconds():
		return LevelElite
	case medianSeconds < (7 * day).Seconds():
		return LevelHigh
	case medianSeconds < (30 * day).Seconds():
		return LevelMedium
	}
	return LevelLow
}

// ChangeFailureRateLevel: at most 5% elite, 10% high, 15% medium, else low.
func ChangeFailureRateLevel(rate float64) Level {
	switch {
	case rate <= 0.05:
		return LevelElite
	case rate <= 0.10:
		return LevelHigh
	case rate <= 0.15:
		return LevelMedium
	}
	return LevelLow
}

// TimeToRestoreLevel, of the median time to restore in seconds: under an
// hour elite, under a day high, under a week medium, else low.
func TimeToRestoreLevel(medianSeconds float64) Level {
	switch {
	case medianSeconds < time.Hour.Seconds():
		return LevelElite
	case medianSeconds < day.Seconds():
		return LevelHigh
	case medianSeconds < (7 * day).Seconds():
		return LevelMedium
	}
	return LevelLow
}

// levelOf applies a level function to a figure; no figure, no level.
func levelOf(f func(float64) Level, v *float64) Level {
	if v == nil {
		return LevelNone
	}
	return f(*v)
}
