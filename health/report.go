package health

import (
	"context"
	"encoding/json"
	"time"
)

// Report is the state of the service as Check and Ready see it.
type Report struct {
	// Status is the aggregate status.
	Status Status
	// Output says why Ready is not ready ("draining", "starting: ...").
	Output string
	// Checks are the checks' latest results, sorted by name.
	Checks []CheckReport
}

// CheckReport is the latest result of one check.
type CheckReport struct {
	Name          string        // Check.Name
	Critical      bool          // Check.Critical
	Status        Status        // after thresholds; fail when the check has no result yet
	Output        string        // redacted; "not checked yet" before the first result
	ComponentType string        // Check.ComponentType, else the Result's, else "component"
	ComponentID   string        // Check.ComponentID
	Time          time.Time     // when the run started, by Config.Now
	Duration      time.Duration // how long the run took
	Measurements  []Measurement // the Result's measurements
}

func (c *Checker) report(ctx context.Context, q query, ready bool) Report {
	st, why := c.status(ctx, q, ready)
	r := Report{Status: st, Output: why}
	for _, s := range *c.checks.Load() {
		if q.excluded(s.check.Name) {
			continue
		}
		cr := CheckReport{
			Name:        s.check.Name,
			Critical:    s.check.Critical,
			Status:      StatusFail,
			Output:      "not checked yet",
			ComponentID: s.check.ComponentID,
		}
		if snap := s.cur.Load(); snap != nil {
			cr.Status = snap.status
			cr.Output = snap.output
			cr.ComponentType = snap.componentType
			cr.Time = snap.time
			cr.Duration = snap.duration
			cr.Measurements = snap.measurements
		}
		r.Checks = append(r.Checks, cr)
	}
	return r
}

// jsonBody is an application/health+json document.
type jsonBody struct {
	Status      Status                 `json:"status"`
	Version     string                 `json:"version,omitempty"`
	ReleaseID   string                 `json:"releaseId,omitempty"`
	ServiceID   string                 `json:"serviceId,omitempty"`
	Description string                 `json:"description,omitempty"`
	Output      string                 `json:"output,omitempty"`
	Checks      map[string][]jsonCheck `json:"checks,omitempty"`
}

// jsonCheck is one entry of the "checks" object.
type jsonCheck struct {
	ComponentID   string    `json:"componentId,omitempty"`
	ComponentType string    `json:"componentType,omitempty"`
	ObservedValue any       `json:"observedValue,omitempty"`
	ObservedUnit  string    `json:"observedUnit,omitempty"`
	Status        Status    `json:"status"`
	Time          time.Time `json:"time,omitzero"`
	Output        string    `json:"output,omitempty"`
}

// marshal encodes r as application/health+json, with the checks when
// withChecks is set.
func (c *Checker) marshal(r Report, withChecks bool) []byte {
	b := jsonBody{
		Status:      r.Status,
		Version:     c.cfg.Version,
		ReleaseID:   c.cfg.ReleaseID,
		ServiceID:   c.cfg.ServiceID,
		Description: c.cfg.Description,
		Output:      r.Output,
	}
	if withChecks && len(r.Checks) > 0 {
		b.Checks = make(map[string][]jsonCheck, len(r.Checks))
		for _, cr := range r.Checks {
			base := jsonCheck{
				ComponentID:   cr.ComponentID,
				ComponentType: cr.ComponentType,
				Status:        cr.Status,
				Time:          cr.Time.UTC(),
			}
			if cr.Status != StatusPass {
				base.Output = cr.Output
			}
			if len(cr.Measurements) == 0 {
				b.Checks[cr.Name] = append(b.Checks[cr.Name], base)
				continue
			}
			for _, m := range cr.Measurements {
				e := base
				e.ObservedValue, e.ObservedUnit = m.Value, m.Unit // redacted when recorded
				if m.ComponentID != "" {
					e.ComponentID = m.ComponentID
				}
				key := cr.Name
				if m.Name != "" {
					key += ":" + m.Name
				}
				b.Checks[key] = append(b.Checks[key], e)
			}
		}
	}
	out, err := json.Marshal(b)
	if err != nil {
		// Only an observedValue that JSON cannot encode gets here: drop the
		// values rather than the whole document.
		for k, list := range b.Checks {
			for i := range list {
				list[i].ObservedValue = nil
			}
			b.Checks[k] = list
		}
		out, _ = json.Marshal(b)
	}
	return append(out, '\n')
}
