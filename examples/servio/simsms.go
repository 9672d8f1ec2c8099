package main

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// simSMS is an in-process stand-in for Twilio's Messages API, started when
// TWILIO_BASE_URL is not set. It honours the idempotency key
// (I-Twilio-Idempotency-Token): the first accepted request of a key is
// delivered — counted once, at arrival, before the (simulated) latency —
// and every later request of that key gets the same message back without
// a second delivery. So a sender killed after the upstream accepted but
// before it heard the answer texts once, however often it retries.
//
// Latency and failure rate (SIM_SMS_LATENCY, SIM_SMS_FAILURE_RATE) let
// retries and the breaker be watched working; a failed request delivers
// nothing. Tests queue faults with failNext. It is safe for concurrent use.
type simSMS struct {
	simServer
	latency atomic.Int64 // nanoseconds
	failPPM uint32       // failures per million requests
	calls   atomic.Int64 // requests, refused ones included

	mu        sync.Mutex
	delivered map[string]int // key → deliveries (1 unless the key was ignored)
	sids      map[string]string
	keys      []string // delivered keys, oldest first: past maxKeys the oldest is forgotten
	maxKeys   int      // simSMSMaxKeys (tests lower it)
	faults    []simSMSFault
	unkeyed   int // requests without a key, each delivered
	requests  []simSMSRequest
}

// simSMSFault is one refused request: its status and Retry-After.
type simSMSFault struct {
	status     int
	retryAfter time.Duration
}

// simSMSRequest is one request as the upstream saw it.
type simSMSRequest struct {
	key    string
	at     time.Time
	status int
}

// startSimSMS listens on a free loopback port and serves until Close.
func startSimSMS(latency time.Duration, failureRate float64, log *slog.Logger) (*simSMS, error) {
	s := &simSMS{failPPM: uint32(failureRate * 1e6), delivered: map[string]int{}, sids: map[string]string{}, maxKeys: simSMSMaxKeys}
	s.latency.Store(int64(latency))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2010-04-01/Accounts/{sid}/Messages.json", s.send)
	if err := s.serve("simulated SMS upstream", mux, log); err != nil {
		return nil, err
	}
	return s, nil
}

// BaseURL is the Twilio-style base URL ("http://127.0.0.1:port").
func (s *simSMS) BaseURL() string { return s.origin() }

// setLatency changes the delay of every later answer.
func (s *simSMS) setLatency(d time.Duration) { s.latency.Store(int64(d)) }

// failNext refuses the next n requests with status (and a Retry-After of
// retryAfter when positive); they deliver nothing.
func (s *simSMS) failNext(n, status int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.faults = append(s.faults, simSMSFault{status: status, retryAfter: retryAfter})
	}
}

// simSMSMaxKeys bounds the idempotency keys the simulation remembers (and
// so its memory in a long-running demo); a key older than the newest
// simSMSMaxKeys would be delivered again, as a token Twilio has forgotten.
const simSMSMaxKeys = 100_000

// deliveries returns how often each key was delivered.
func (s *simSMS) deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.delivered))
	for k, n := range s.delivered {
		out[k] = n
	}
	return out
}

// history returns every well-formed request seen, in arrival order.
func (s *simSMS) history() []simSMSRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]simSMSRequest(nil), s.requests...)
}

func (s *simSMS) send(w http.ResponseWriter, r *http.Request) {
	s.calls.Add(1)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("To") == "" || r.PostForm.Get("Body") == "" {
		writeJSON(w, http.StatusBadRequest, map[string]any{"code": 21604, "message": "To and Body are required", "status": 400})
		return
	}
	if u, _, ok := r.BasicAuth(); !ok || u != r.PathValue("sid") {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 20003, "message": "Authenticate", "status": 401})
		return
	}
	key := r.Header.Get(idempotencyHeader)
	s.mu.Lock()
	var fault *simSMSFault
	if len(s.faults) > 0 {
		fault = &s.faults[0]
		s.faults = s.faults[1:]
	} else if s.failPPM > 0 && rand.Uint32N(1e6) < s.failPPM {
		fault = &simSMSFault{status: http.StatusServiceUnavailable}
	}
	status := http.StatusCreated
	if fault != nil {
		status = fault.status
	}
	if len(s.requests) < 100_000 { // bounded: a long-running demo must not grow it forever
		s.requests = append(s.requests, simSMSRequest{key: key, at: time.Now(), status: status})
	}
	var sid string
	if fault == nil {
		// Accepted: delivered now, answered after the latency.
		switch {
		case key == "":
			s.unkeyed++
			sid = "SMsim" + strconv.Itoa(s.unkeyed)
		case s.sids[key] != "":
			sid = s.sids[key]
		default:
			sid = "SMsim-" + key
			s.sids[key] = sid
			s.delivered[key]++
			s.keys = append(s.keys, key)
			if len(s.keys) > s.maxKeys { // bounded like Twilio's own token memory
				delete(s.sids, s.keys[0])
				delete(s.delivered, s.keys[0])
				s.keys = s.keys[1:]
			}
		}
	}
	s.mu.Unlock()
	if d := time.Duration(s.latency.Load()); d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if fault != nil {
		if fault.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((fault.retryAfter+time.Second-1)/time.Second)))
		}
		writeJSON(w, fault.status, map[string]any{"code": 20500, "message": "simulated upstream failure", "status": fault.status})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"sid": sid, "status": "queued", "to": r.PostForm.Get("To"),
		"from": r.PostForm.Get("From"), "body": r.PostForm.Get("Body")})
}
