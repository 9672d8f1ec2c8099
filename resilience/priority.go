package resilience

import "context"

// Priority ranks a request for an AdaptiveLimiter: under pressure the
// lowest priorities are shed first, and PriorityCritical is never shed. The
// zero value is PriorityNormal.
type Priority int

const (
	// PriorityLow is for work that can wait or be dropped first: assistant
	// calls, uploads, exports. It may use up to 50 % of the limit.
	PriorityLow Priority = -1
	// PriorityNormal (the zero value) is for ordinary reads. It may use up
	// to 75 % of the limit.
	PriorityNormal Priority = 0
	// PriorityHigh is for work users notice when it fails: logins, placing
	// orders, status changes. It may use up to 90 % of the limit.
	PriorityHigh Priority = 1
	// PriorityCritical is for health probes and the metrics scrape: it is
	// always admitted, even over the limit, and never queued.
	PriorityCritical Priority = 2
)

// prioritySlots is the number of priorities; index = Priority - PriorityLow.
const prioritySlots = 4

// priorityShare is the fraction of the limit each priority may fill,
// indexed by Priority.index.
var priorityShare = [prioritySlots]float64{0.5, 0.75, 0.9, 1}

var priorityNames = [prioritySlots]string{"low", "normal", "high", "critical"}

// clamp maps values outside Low..Critical to the nearest one.
func (p Priority) clamp() Priority {
	return min(max(p, PriorityLow), PriorityCritical)
}

func (p Priority) index() int { return int(p.clamp() - PriorityLow) }

// String returns "low", "normal", "high" or "critical" (values outside the
// range are clamped to the nearest).
func (p Priority) String() string { return priorityNames[p.index()] }

type priorityKey struct{}

// WithPriority returns a copy of ctx carrying p, which Adaptive and
// Adaptive1 (and PriorityFrom) read.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityFrom returns the priority stored by WithPriority, or
// PriorityNormal.
func PriorityFrom(ctx context.Context) Priority {
	p, _ := ctx.Value(priorityKey{}).(Priority)
	return p
}
