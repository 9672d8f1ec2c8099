package cpuburn

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFor(t *testing.T) {
	assert.Equal(t, 0, For(0, 13000))
	assert.Equal(t, 0, For(-time.Millisecond, 13000))
	assert.Equal(t, 13000, For(time.Millisecond, 13000))
	assert.Equal(t, 4550, For(350*time.Microsecond, 13000))
}

// TestCalibrateMeasuresWork: the rate Calibrate returns is the work of
// Rounds, measured in wall time: 20 ms of rounds at that rate takes at
// least 10 ms (the calibration keeps the fastest batch, so a later burn
// is never much faster) — a rate read far too low fails.
func TestCalibrateMeasuresWork(t *testing.T) {
	perMS := Calibrate()
	assert.Greater(t, perMS, 0.0)
	t0 := time.Now()
	Rounds(For(20*time.Millisecond, perMS))
	assert.GreaterOrEqual(t, time.Since(t0), 10*time.Millisecond, "20 ms of rounds at the calibrated rate")
}

func Example() {
	perMS := Calibrate()                 // once per core, at start
	Rounds(For(time.Millisecond, perMS)) // a millisecond's work
}
