package dbpool

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// A read is rerun on the primary only when the replica failed, not the
// statement: a statement past its QueryTimeout stays a failure of the read.
func TestReplicaFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&queryTimeoutError{d: time.Second, err: context.DeadlineExceeded}, false},
		{fmt.Errorf("query: %w", &queryTimeoutError{d: time.Second, err: context.DeadlineExceeded}), false},
		{errors.New("syntax error"), false},
		{&acquireTimeoutError{d: time.Second}, true},
		{driver.ErrBadConn, true},
		{io.ErrUnexpectedEOF, true},
		{fmt.Errorf("read: %w", io.EOF), true},
	} {
		assert.Equal(t, tc.want, replicaFailure(tc.err), "%v", tc.err)
	}
}
