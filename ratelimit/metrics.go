package ratelimit

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

const meterName = "github.com/servio/perfkit/ratelimit"

// instruments are created once per Group or Middleware; the attribute sets
// they use are built up front so recording allocates nothing.
type instruments struct {
	decisions    metric.Int64Counter
	fallbacks    metric.Int64Counter
	redisDur     metric.Float64Histogram
	redisOK      []metric.RecordOption
	redisErr     []metric.RecordOption
	redisTimeout []metric.RecordOption
}

// Why a decision was made without Redis: the reason attribute of
// perfkit.ratelimit.fallbacks.
const (
	reasonTimeout     = iota // Redis did not answer within Config.RedisTimeout
	reasonError              // Redis answered with an error, or the connection failed
	reasonBreakerOpen        // the key's node breaker was open: Redis was not asked
	fallbackReasons
)

var reasonNames = [fallbackReasons]string{"timeout", "error", "breaker_open"}

func newInstruments(mp metric.MeterProvider) (*instruments, error) {
	m := mp.Meter(meterName)
	var in instruments
	var err error
	if in.decisions, err = m.Int64Counter("perfkit.ratelimit.decisions",
		metric.WithDescription("Rate-limit decisions by tier and outcome (allowed, denied, shadow_denied, unavailable)."),
		metric.WithUnit("{decision}")); err != nil {
		return nil, err
	}
	if in.fallbacks, err = m.Int64Counter("perfkit.ratelimit.fallbacks",
		metric.WithDescription("Decisions made without Redis, by tier, failure policy and reason (timeout, error, breaker_open)."),
		metric.WithUnit("{fallback}")); err != nil {
		return nil, err
	}
	if in.redisDur, err = m.Float64Histogram("perfkit.ratelimit.redis.duration",
		metric.WithDescription("Duration of one Redis rate-limit round trip."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1)); err != nil {
		return nil, err
	}
	in.redisOK = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "ok")))}
	in.redisErr = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "error")))}
	in.redisTimeout = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("result", "timeout")))}
	return &in, nil
}

// addOpts returns a prebuilt option slice for a counter with these attributes.
func addOpts(kv ...attribute.KeyValue) []metric.AddOption {
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kv...))}
}
