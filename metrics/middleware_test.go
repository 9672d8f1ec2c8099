package metrics

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			http.Error(w, "no such order", http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, "order")
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/boom", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	})
	mux.HandleFunc("/custom/", func(w http.ResponseWriter, _ *http.Request) {
		SetRoute(w, "/custom/{rest...}")
	})
	return mux
}

func TestMiddlewareRecordsRoutePatternMethodAndStatus(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp})
	require.NoError(t, err)
	h := mw.Wrap(newMux())

	reqs := []struct{ method, path string }{
		{"GET", "/orders/1"}, {"GET", "/orders/2"}, {"GET", "/orders/missing"},
		{"POST", "/orders"}, {"BREW", "/boom"}, {"GET", "/nowhere"},
	}
	for _, rq := range reqs {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(rq.method, rq.path, nil))
	}

	pts := histPoints(t, collect(t, r, HTTPServerDuration))
	want := map[string]uint64{
		"http.request.method=GET,http.response.status_code=200,http.route=/orders/{id},network.protocol.version=1.1,url.scheme=http":            2,
		"http.request.method=GET,http.response.status_code=404,http.route=/orders/{id},network.protocol.version=1.1,url.scheme=http":            1,
		"http.request.method=POST,http.response.status_code=201,http.route=/orders,network.protocol.version=1.1,url.scheme=http":                1,
		"error.type=500,http.request.method=_OTHER,http.response.status_code=500,http.route=/boom,network.protocol.version=1.1,url.scheme=http": 1,
		"http.request.method=GET,http.response.status_code=404,network.protocol.version=1.1,url.scheme=http":                                    1,
	}
	got := map[string]uint64{}
	for k, dp := range pts {
		got[k] = dp.Count
		assert.Equal(t, HTTPBuckets(), dp.Bounds, "seconds buckets on %s", k)
	}
	assert.Equal(t, want, got)

	active := collect(t, r, HTTPServerActiveRequests).Data.(metricdata.Sum[int64])
	for _, dp := range active.DataPoints {
		assert.Zero(t, dp.Value, "active requests back to 0 for %s", dp.Attributes.Encoded(nil))
	}
}

func TestMiddlewareBoundsRoutes(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp, MaxRoutes: 1})
	require.NoError(t, err)
	h := mw.Wrap(newMux())
	for _, p := range []string{"/orders/1", "/boom", "/custom/a/b", "/orders/2"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	routes := map[string]uint64{}
	for _, dp := range histPoints(t, collect(t, r, HTTPServerDuration)) {
		v, _ := dp.Attributes.Value("http.route")
		routes[v.AsString()] += dp.Count
	}
	assert.Equal(t, map[string]uint64{"/orders/{id}": 2, OtherValue: 2}, routes)
}

func TestMiddlewareInsideMuxAndSetRoute(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("GET /menu/{id}", mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})))
	// A layer that replaces the request hides the pattern from an outer Wrap;
	// SetRoute (here from the custom handler) still reports it.
	outer := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		newMux().ServeHTTP(w, r.WithContext(r.Context()))
	}))
	mux.Handle("/custom/", outer)
	for _, p := range []string{"/menu/7", "/custom/x"} {
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	routes := map[string]uint64{}
	for _, dp := range histPoints(t, collect(t, r, HTTPServerDuration)) {
		v, _ := dp.Attributes.Value("http.route")
		routes[v.AsString()] += dp.Count
	}
	// The outer Wrap around /custom/ sees the outer mux's pattern "/custom/"
	// on its own request, but the route reported from inside is more specific.
	assert.Equal(t, map[string]uint64{"/menu/{id}": 1, "/custom/{rest...}": 1}, routes)
}

func TestReportRouteThroughRequestReplacingLayer(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp})
	require.NoError(t, err)
	// A layer that replaces the request and wraps the writer, like many
	// auth or rate-limit middlewares.
	replacing := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(wrappedWriter{w}, r.WithContext(r.Context()))
		})
	}
	hidden := mw.Wrap(replacing(newMux()))
	reported := mw.Wrap(replacing(ReportRoute(newMux())))
	hidden.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/orders/1", nil))
	reported.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/orders/2", nil))

	routes := map[string]uint64{}
	for _, dp := range histPoints(t, collect(t, r, HTTPServerDuration)) {
		v, _ := dp.Attributes.Value("http.route")
		routes[v.AsString()] += dp.Count
	}
	assert.Equal(t, map[string]uint64{"": 1, "/orders/{id}": 1}, routes,
		"the pattern is lost without ReportRoute and kept with it")
}

type wrappedWriter struct{ http.ResponseWriter }

func (w wrappedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func TestSetRouteThroughUnwrapChain(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp})
	require.NoError(t, err)
	router := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		SetRoute(w, "/items/:id")
		w.WriteHeader(http.StatusAccepted)
	})
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		router.ServeHTTP(wrappedWriter{w}, r)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/items/9", nil))
	SetRoute(httptest.NewRecorder(), "/ignored") // no middleware writer: nothing happens

	for _, dp := range histPoints(t, collect(t, r, HTTPServerDuration)) {
		route, _ := dp.Attributes.Value("http.route")
		status, _ := dp.Attributes.Value("http.response.status_code")
		assert.Equal(t, "/items/:id", route.AsString())
		assert.Equal(t, int64(http.StatusAccepted), status.AsInt64())
	}
}

func TestMiddlewareOverRealServerFlushAndPanic(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "a")
		w.(http.Flusher).Flush()
	})
	mux.HandleFunc("POST /abort", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) })
	srv := httptest.NewServer(mw.Wrap(mux))
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/stream")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, "a", string(body))
	_, err = http.Post(srv.URL+"/abort", "text/plain", nil)
	require.Error(t, err, "aborted handler closes the connection (POST: the client does not retry)")
	srv.Close() // waits for handlers, so both requests are recorded

	routes := map[string]string{}
	for _, dp := range histPoints(t, collect(t, r, HTTPServerDuration)) {
		v, _ := dp.Attributes.Value("http.route")
		st, _ := dp.Attributes.Value("http.response.status_code")
		routes[v.AsString()] = strconv.FormatInt(st.AsInt64(), 10)
	}
	assert.Equal(t, map[string]string{"/stream": "200", "/abort": "500"}, routes,
		"an aborted handler that wrote nothing counts as 500")
	active := collect(t, r, HTTPServerActiveRequests).Data.(metricdata.Sum[int64])
	for _, dp := range active.DataPoints {
		assert.Zero(t, dp.Value, "active requests back to 0 after a panic")
	}
}

func TestNewHTTPMiddlewareRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []HTTPConfig{{MaxRoutes: -1}, {Buckets: []float64{2, 1}}} {
		_, err := NewHTTPMiddleware(cfg)
		assert.ErrorIs(t, err, ErrInvalidConfig, "config %+v", cfg)
	}
}

func TestMiddlewareWithoutActiveRequests(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp, DisableActiveRequests: true})
	require.NoError(t, err)
	mw.Wrap(newMux()).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/orders/1", nil))
	var rm metricdata.ResourceMetrics
	require.NoError(t, r.Collect(t.Context(), &rm))
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names = append(names, m.Name)
		}
	}
	assert.Equal(t, []string{HTTPServerDuration}, names)
}

// TestMiddlewareConcurrentNewSeries races many new (route, status) series
// through the copy-on-write cache; run with -race.
func TestMiddlewareConcurrentNewSeries(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp, MaxRoutes: 5})
	require.NoError(t, err)
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetRoute(w, "/r"+r.URL.Query().Get("r"))
		code, _ := strconv.Atoi(r.URL.Query().Get("s"))
		w.WriteHeader(code)
	}))
	const workers, perWorker = 8, 50
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() {
			for i := range perWorker {
				url := fmt.Sprintf("/?r=%d&s=%d", (g+i)%10, 200+(i%4))
				h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", url, nil))
			}
		})
	}
	wg.Wait()
	var total uint64
	routes := map[string]bool{}
	for _, dp := range histPoints(t, collect(t, r, HTTPServerDuration)) {
		total += dp.Count
		v, _ := dp.Attributes.Value("http.route")
		routes[v.AsString()] = true
	}
	assert.Equal(t, uint64(workers*perWorker), total, "every request recorded once")
	assert.Len(t, routes, 6, "5 routes plus _OTHER")
	assert.True(t, routes[OtherValue])
}

func TestRouteTemplate(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want string }{
		{"GET /orders/{id}", "/orders/{id}"},
		{"api.example.com/x", "/x"},
		{"POST api.example.com/x/{y...}", "/x/{y...}"},
		{"/plain", "/plain"},
		{"custom-name", "custom-name"},
		{"", ""},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, routeTemplate(c.in), "pattern %q", c.in)
	}
}

func TestMiddlewareKeepsReaderFromAndHijack(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, _ *http.Request) {
		_, isRF := w.(io.ReaderFrom)
		assert.True(t, isRF, "writer is an io.ReaderFrom")
		_, _ = io.Copy(w, strings.NewReader("payload"))
	})
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if !assert.NoError(t, err) {
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n")
		_ = buf.Flush()
		_ = conn.Close()
	})
	// httptest.Server.Close does not wait for a handler that hijacked its
	// connection, so wait for the middleware itself to return.
	var served sync.WaitGroup
	h := mw.Wrap(mux)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer served.Done()
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	served.Add(2)

	resp, err := http.Get(srv.URL + "/file")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, "payload", string(body))
	resp, err = http.Get(srv.URL + "/ws")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	served.Wait()
	srv.Close()

	statuses := map[string]int64{}
	for _, dp := range histPoints(t, collect(t, r, HTTPServerDuration)) {
		route, _ := dp.Attributes.Value("http.route")
		st, _ := dp.Attributes.Value("http.response.status_code")
		statuses[route.AsString()] = st.AsInt64()
	}
	assert.Equal(t, map[string]int64{"/file": 200, "/ws": 101}, statuses)
}

func TestMiddlewareStatusAfterUnsupportedHijackAndFlush(t *testing.T) {
	t.Parallel()
	mp, r := newManual(t)
	mw, err := NewHTTPMiddleware(HTTPConfig{MeterProvider: mp})
	require.NoError(t, err)
	// A writer that can neither hijack nor flush, like HTTP/2's for Hijack.
	type plainWriter struct{ http.ResponseWriter }
	h := mw.Wrap(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _, err := w.(http.Hijacker).Hijack()
		assert.ErrorIs(t, err, http.ErrNotSupported)
		w.(http.Flusher).Flush()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	h.ServeHTTP(plainWriter{httptest.NewRecorder()}, httptest.NewRequest("GET", "/", nil))
	pts := histPoints(t, collect(t, r, HTTPServerDuration))
	require.Len(t, pts, 1)
	for _, dp := range pts {
		st, _ := dp.Attributes.Value("http.response.status_code")
		assert.Equal(t, int64(http.StatusServiceUnavailable), st.AsInt64(),
			"a failed Hijack or Flush sent nothing: the status is what the handler wrote next")
	}
}
