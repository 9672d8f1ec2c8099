package resilience

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/servio/perfkit/internal/redact/redacttest"
)

// TestRetryLogNeverQuotesSecrets: the retry's Debug record carries the
// attempt's error, and an HTTP client's error quotes the request URL
// (with a key in its query, a webhook path, a password in userinfo); every
// shape of the toolkit's leak table goes through it and no secret may
// appear in the log.
func TestRetryLogNeverQuotesSecrets(t *testing.T) {
	t.Parallel()
	for _, tc := range redacttest.Cases(3) {
		var buf bytes.Buffer
		logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		fn := func(context.Context) (int, error) {
			return 0, errors.New(`Post "` + tc.Input + `": connection refused`)
		}
		_, err := Retry(RetryConfig{MaxAttempts: 2, Clock: newAutoClock(), Logger: logger}, fn)(context.Background())
		assert.Error(t, err)
		assert.Contains(t, buf.String(), "resilience: retrying", "%s: the retry was not logged", tc.Name)
		assert.False(t, strings.Contains(buf.String(), tc.Secret), "%s: secret %q in the retry log: %s", tc.Name, tc.Secret, buf.String())
	}
}
