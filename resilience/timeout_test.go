package resilience

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func blockUntilDone(ctx context.Context) (int, error) {
	<-ctx.Done()
	return 0, ctx.Err()
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	v, err := Timeout(time.Second, okCall)(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, v)

	_, err = TimeoutMsg(5*time.Millisecond, "menu service too slow", blockUntilDone)(context.Background())
	var te *TimeoutError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 5*time.Millisecond, te.After)
	assert.ErrorIs(t, err, ErrTimeout)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, "resilience: menu service too slow (timeout after 5ms)", err.Error())

	_, err = Timeout(5*time.Millisecond, blockUntilDone)(context.Background())
	assert.Equal(t, "resilience: timeout after 5ms", err.Error())
}

func TestTimeoutCallerCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Timeout(time.Hour, blockUntilDone)(ctx)
	assert.ErrorIs(t, err, context.Canceled)
	assert.NotErrorIs(t, err, ErrTimeout, "the caller's cancellation is not a timeout")
}

func TestTimeoutCalleeErrorKept(t *testing.T) {
	t.Parallel()
	_, err := Timeout(time.Hour, fail)(context.Background())
	assert.Same(t, errBoom, err)
}

func TestTimeoutZeroIsNoop(t *testing.T) {
	t.Parallel()
	fn := Timeout(0, blockUntilDone)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := fn(ctx)
	assert.Same(t, context.Canceled, err)
}

func TestTimeout1(t *testing.T) {
	t.Parallel()
	wait := func(ctx context.Context, d time.Duration) (int, error) {
		if d == 0 {
			return 1, nil // no race with the deadline however slow the machine
		}
		select {
		case <-time.After(d):
			return 1, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	fn := Timeout1(20*time.Millisecond, wait)
	v, err := fn(context.Background(), 0)
	require.NoError(t, err)
	assert.Equal(t, 1, v)
	_, err = fn(context.Background(), time.Hour)
	assert.ErrorIs(t, err, ErrTimeout)
}
