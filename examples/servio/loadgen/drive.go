package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// routeStats is what one worker saw of one route.
type routeStats struct {
	hist            histogram
	errors, limited uint64
}

// recorder collects one worker's results; merged at the end, so the hot
// path takes no lock.
type recorder struct {
	all    histogram
	routes map[string]*routeStats
	errs   uint64 // transport errors and 5xx
	lim    uint64 // 429
	c4xx   uint64 // other 4xx (expected for some writes, e.g. out of stock)
}

func newRecorder() *recorder { return &recorder{routes: map[string]*routeStats{}} }

func (r *recorder) merge(o *recorder) {
	r.all.merge(&o.all)
	r.errs += o.errs
	r.lim += o.lim
	r.c4xx += o.c4xx
	for k, v := range o.routes {
		s := r.routes[k]
		if s == nil {
			s = &routeStats{}
			r.routes[k] = s
		}
		s.hist.merge(&v.hist)
		s.errors += v.errors
		s.limited += v.limited
	}
}

// live counters for the progress line.
type progress struct {
	sent, done, errs atomic.Uint64
}

type engine struct {
	o       *options
	token   string // the signed-in user's bearer token
	client  *http.Client
	menus   *menus
	prog    progress
	measure atomic.Bool
	// requestStart is the header sendTimed stamps with each request's
	// send time (overload's -request-start); "" none.
	requestStart string
	// runClients, with overload's -client-throttle-per-run, are the
	// clients of each priority class every step shares; nil: each step
	// builds its own (classClients).
	runClients *[prioCount]*http.Client
}

func drive(ctx context.Context, o options, stderr io.Writer) (*report, error) {
	e := &engine{o: &o, client: newHTTPClient(o.concurrency), menus: &menus{items: map[int][]int64{}}}
	defer e.client.CloseIdleConnections()
	if err := e.ping(ctx); err != nil {
		return nil, err
	}
	if err := e.login(ctx); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithTimeout(ctx, o.warmup+o.duration)
	defer cancel()
	sampler := startSampler(runCtx, e.client, o.target)
	if !o.quiet {
		go e.showProgress(runCtx, stderr)
	}
	// The service's counters are read when measuring starts, so the report's
	// rates cover the measured window only, not the warm-up.
	beforec := make(chan families, 1)
	time.AfterFunc(o.warmup, func() {
		f, _ := scrape(ctx, e.client, o.target)
		e.measure.Store(true)
		beforec <- f
	})
	start := time.Now()
	var rec *recorder
	if o.mode == "open" {
		rec = e.openLoop(runCtx)
	} else {
		rec = e.closedLoop(runCtx)
	}
	elapsed := time.Since(start) - o.warmup
	if !o.quiet {
		fmt.Fprintln(stderr)
	}
	after, _ := scrape(context.Background(), e.client, o.target)
	before := <-beforec
	return newReport(&o, rec, elapsed, before, after, sampler.stop()), nil
}

func (e *engine) ping(ctx context.Context) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.o.target+"/health", nil)
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("service not reachable at %s: %w", e.o.target, err)
	}
	resp.Body.Close()
	return nil
}

// login signs in as o.email, as a user's client would, and keeps the
// token for the staff routes.
func (e *engine) login(ctx context.Context) error {
	body, _ := json.Marshal(map[string]string{"email": e.o.email, "password": e.o.password})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.o.target+"/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.client.Do(req)
	if err != nil {
		return fmt.Errorf("log in as %s: %w", e.o.email, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var res struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &res) != nil || res.Token == "" {
		return fmt.Errorf("log in as %s: %s %s", e.o.email, resp.Status, bytes.TrimSpace(b))
	}
	e.token = res.Token
	return nil
}

// openLoop issues requests at their scheduled times. Latency counts from the
// scheduled time, so time spent waiting for a free slot is included.
func (e *engine) openLoop(ctx context.Context) *recorder {
	interval := time.Duration(float64(time.Second) / e.o.rate)
	type job struct {
		op  op
		due time.Time
	}
	jobs := make(chan job, e.o.concurrency*4)
	recs := make([]*recorder, e.o.concurrency)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = newRecorder()
		wg.Go(func() {
			for j := range jobs {
				e.do(j.op, j.due, recs[i])
			}
		})
	}
	w := newWorkload(e.o, 0, e.menus)
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-timer.C:
		}
		now := time.Now()
		for !next.After(now) {
			select {
			case jobs <- job{w.next(), next}:
				e.prog.sent.Add(1)
			case <-ctx.Done():
				break loop
			}
			next = next.Add(interval)
		}
		timer.Reset(time.Until(next))
	}
	close(jobs)
	wg.Wait()
	return mergeAll(recs)
}

func (e *engine) closedLoop(ctx context.Context) *recorder {
	recs := make([]*recorder, e.o.concurrency)
	var wg sync.WaitGroup
	for i := range recs {
		recs[i] = newRecorder()
		w := newWorkload(e.o, uint64(i+1), e.menus)
		wg.Go(func() {
			for ctx.Err() == nil {
				e.prog.sent.Add(1)
				e.do(w.next(), time.Now(), recs[i])
			}
		})
	}
	wg.Wait()
	return mergeAll(recs)
}

func mergeAll(recs []*recorder) *recorder {
	all := newRecorder()
	for _, r := range recs {
		all.merge(r)
	}
	return all
}

// do sends one request. Requests are sent with a background context so the
// end of the run does not turn in-flight requests into errors. A write (an
// op with a key) that gets a 503 or no answer is sent again with the same
// Idempotency-Key, up to writeRetries times; the latency covers all tries.
func (e *engine) do(o op, due time.Time, rec *recorder) {
	status, respBody, err := e.send(o)
	for try := 0; o.key != "" && try < writeRetries && (err != nil || status == http.StatusServiceUnavailable); try++ {
		time.Sleep(retryPause << try)
		status, respBody, err = e.send(o)
	}
	lat := time.Since(due)
	e.prog.done.Add(1)
	failed := err != nil || status >= 500
	if failed {
		e.prog.errs.Add(1)
	}
	if respBody != nil {
		o.onBody(respBody)
	}
	if !e.measure.Load() {
		return
	}
	rs := rec.routes[o.route]
	if rs == nil {
		rs = &routeStats{}
		rec.routes[o.route] = rs
	}
	rec.all.record(lat)
	rs.hist.record(lat)
	switch {
	case failed:
		rec.errs++
		rs.errors++
	case status == http.StatusTooManyRequests:
		rec.lim++
		rs.limited++
	case status >= 400:
		rec.c4xx++
	}
}

// Retries of a write (see engine.do).
const (
	writeRetries = 3
	retryPause   = 100 * time.Millisecond
)

// send sends o once and returns the status (0 with err when no answer
// came) and, when o wants it, the body of a 2xx answer.
func (e *engine) send(o op) (int, []byte, error) {
	resp, err := e.client.Do(e.newRequest(context.Background(), o))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var respBody []byte
	if o.onBody != nil && resp.StatusCode/100 == 2 {
		respBody, _ = io.ReadAll(resp.Body)
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return resp.StatusCode, respBody, nil
}

// newRequest builds the request of o with its headers.
func (e *engine) newRequest(ctx context.Context, o op) *http.Request {
	var body io.Reader
	if o.body != nil {
		body = bytes.NewReader(o.body)
	}
	req, _ := http.NewRequestWithContext(ctx, o.method, e.o.target+o.path, body)
	if o.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Forwarded-For", o.client)
	if o.auth {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	if o.key != "" {
		req.Header.Set("Idempotency-Key", o.key)
	}
	return req
}

func (e *engine) showProgress(ctx context.Context, w io.Writer) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	start := time.Now()
	var last uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		done := e.prog.done.Load()
		phase := "run"
		if !e.measure.Load() {
			phase = "warm-up"
		}
		fmt.Fprintf(w, "\r%-7s %5.0fs  %7d req/s  sent %d  done %d  errors %d   ",
			phase, time.Since(start).Seconds(), done-last, e.prog.sent.Load(), done, e.prog.errs.Load())
		last = done
	}
}

func sortedRoutes(m map[string]*routeStats) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
