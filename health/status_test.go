package health

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestAggregation(t *testing.T) {
	t.Parallel()
	type chk struct {
		critical bool
		res      Result
	}
	fail := Result{Err: errors.New("down")}
	warn := Result{Status: StatusWarn}
	pass := Result{}
	tests := []struct {
		name   string
		checks []chk
		want   Status
		code   int
	}{
		{"no checks", nil, StatusPass, http.StatusOK},
		{"critical pass", []chk{{true, pass}}, StatusPass, http.StatusOK},
		{"critical warn", []chk{{true, warn}}, StatusWarn, http.StatusOK},
		{"critical fail", []chk{{true, fail}}, StatusFail, http.StatusServiceUnavailable},
		{"non-critical pass", []chk{{false, pass}}, StatusPass, http.StatusOK},
		{"non-critical warn", []chk{{false, warn}}, StatusWarn, http.StatusOK},
		{"non-critical fail", []chk{{false, fail}}, StatusWarn, http.StatusOK},
		{"critical pass, non-critical fail", []chk{{true, pass}, {false, fail}}, StatusWarn, http.StatusOK},
		{"critical warn, non-critical fail", []chk{{true, warn}, {false, fail}}, StatusWarn, http.StatusOK},
		{"critical fail, non-critical pass", []chk{{true, fail}, {false, pass}}, StatusFail, http.StatusServiceUnavailable},
		{"critical pass, critical fail", []chk{{true, pass}, {true, fail}}, StatusFail, http.StatusServiceUnavailable},
		{"status fail without error", []chk{{true, Result{Status: StatusFail}}}, StatusFail, http.StatusServiceUnavailable},
		{"error beats status pass", []chk{{true, Result{Status: StatusPass, Err: errors.New("x")}}}, StatusFail, http.StatusServiceUnavailable},
		{"out of range status is fail", []chk{{true, Result{Status: 7}}}, StatusFail, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var checks []Check
			for i, c := range tt.checks {
				checks = append(checks, Check{Name: string(rune('a' + i)), Critical: c.critical, Run: fixed(c.res)})
			}
			c := newTest(t, Config{Checks: checks})
			got := c.Check(context.Background())
			assert.Equal(t, tt.want, got.Status, "aggregate status")
			assert.Equal(t, tt.code, got.Status.HTTPStatus(), "HTTP status")
			w := get(c.Handler(HandlerConfig{}), "/health")
			assert.Equal(t, tt.code, w.Code, "HTTP status served")
			assert.JSONEq(t, `{"status":"`+tt.want.String()+`"}`, w.Body.String())
		})
	}
}

func TestStatusText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Status
	}{
		{"pass", StatusPass}, {"ok", StatusPass}, {"up", StatusPass},
		{"warn", StatusWarn},
		{"fail", StatusFail}, {"error", StatusFail}, {"down", StatusFail},
	}
	for _, tt := range tests {
		var s Status
		assert.NoError(t, s.UnmarshalText([]byte(tt.in)), tt.in)
		assert.Equal(t, tt.want, s, tt.in)
	}
	var s Status
	assert.Error(t, s.UnmarshalText([]byte("meh")))
	_, err := Status(9).MarshalText()
	assert.Error(t, err)
	assert.Equal(t, "Status(9)", Status(9).String())
}
