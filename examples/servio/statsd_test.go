package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servio/perfkit/internal/statsdtest"
	"github.com/servio/perfkit/metrics"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatsDFormatConfig: STATSD_FORMAT picks the dialect, -statsd-format
// wins over it, dogstatsd is the default and any other name is refused.
func TestStatsDFormatConfig(t *testing.T) {
	t.Parallel()
	cases := []struct {
		env  string
		args []string
		want metrics.StatsDFormat
	}{
		{"", nil, metrics.DogStatsD},
		{"statsd", nil, metrics.PlainStatsD},
		{"dogstatsd", nil, metrics.DogStatsD},
		{"statsd", []string{"-statsd-format", "dogstatsd"}, metrics.DogStatsD},
		{"", []string{"-statsd-format", "statsd"}, metrics.PlainStatsD},
	}
	for _, c := range cases {
		getenv := func(k string) string {
			if k == "STATSD_FORMAT" {
				return c.env
			}
			return ""
		}
		cfg, err := parseConfig("servio-test", c.args, getenv, io.Discard, nil)
		require.NoError(t, err, "env %q args %v", c.env, c.args)
		assert.Equal(t, c.want, cfg.StatsDFormat, "env %q args %v", c.env, c.args)
	}
	_, err := parseConfig("servio-test", nil, func(k string) string {
		if k == "STATSD_FORMAT" {
			return "graphite"
		}
		return ""
	}, io.Discard, nil)
	assert.ErrorContains(t, err, "STATSD_FORMAT")
	_, err = parseConfig("servio-test", []string{"-statsd-format", "influx"}, func(string) string { return "" }, io.Discard, nil)
	assert.Error(t, err)
}

// TestStatsDPlainIntoRealStatsd: servio with -statsd-addr at the Etsy
// statsd daemon and STATSD_FORMAT=statsd yields request timers whose count
// is the number of requests, and Track's operation timers.
func TestStatsDPlainIntoRealStatsd(t *testing.T) {
	d := statsdtest.Start(t)
	getenv := func(k string) string {
		if k == "STATSD_FORMAT" {
			return "statsd"
		}
		return ""
	}
	cfg, err := parseConfig("servio-test", []string{"-statsd-addr", d.Addr}, getenv, io.Discard, nil)
	require.NoError(t, err)
	test := testConfig(t, "sqlite")
	cfg.DataDir, cfg.SimLLMLatency, cfg.AuthSecret = test.DataDir, test.SimLLMLatency, test.AuthSecret
	app := startApp(t, cfg)

	const menus = 7
	for range menus {
		code, body := app.do(http.MethodGet, "/restaurants/1/menu", "")
		require.Equal(t, http.StatusOK, code, "menu: %s", body)
	}
	require.NoError(t, app.metrics.ForceFlush(context.Background()))

	const prefix = "stats.timers.servio.http.server.request.duration."
	menuCount := func() float64 {
		var n float64
		for _, name := range d.Names(prefix) {
			if strings.Contains(name, "restaurants") && strings.HasSuffix(name, ".count") {
				n += d.Sum(name)
			}
		}
		return n
	}
	ok := d.WaitFor(30*time.Second, func() bool { return menuCount() >= menus })
	require.Truef(t, ok, "menu request timers: %v of %d; statsd flushed %v\n%s",
		menuCount(), menus, d.Names("stats."), d.Output())
	assert.Equal(t, float64(menus), menuCount(), "one timer observation per request")
	t.Logf("request timers: %v", d.Names(prefix))
	var track []string
	for _, name := range d.Names("stats.timers.servio.perfkit.operation.duration.") {
		if strings.HasSuffix(name, ".upper") {
			track = append(track, name)
		}
	}
	assert.NotEmpty(t, track, "Track's service-method timers reach statsd")
}
