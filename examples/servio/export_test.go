package main

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// seededRestaurant seeds orders into one extra restaurant of a and returns
// its id and its orders, oldest first (what an unbounded export returns).
func seededRestaurant(t *testing.T, a *testApp, orders int) (int64, []store.Order) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, a.st.Seed(ctx, store.SeedOptions{Restaurants: 1, Items: 4, Orders: orders}))
	var rid int64
	require.NoError(t, a.db.QueryRowContext(ctx, "SELECT MAX(id) FROM restaurants").Scan(&rid))
	var all []store.Order
	require.NoError(t, a.st.ExportOrders(ctx, a.db, store.ExportQuery{RestaurantID: rid}, func(p []store.Order) error {
		all = append(all, p...)
		return nil
	}))
	require.Len(t, all, orders)
	return rid, all
}

// get sends a GET as a's token and returns the response with its body
// read (trailers are then in resp.Trailer).
func (a *testApp) get(path string) (*http.Response, []byte) {
	a.t.Helper()
	req, err := http.NewRequest("GET", a.URL+path, nil)
	require.NoError(a.t, err)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(a.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(a.t, err)
	return resp, b
}

// ndjsonOrders decodes an NDJSON export.
func ndjsonOrders(t *testing.T, b []byte) []store.Order {
	t.Helper()
	var out []store.Order
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var o store.Order
		require.NoError(t, json.Unmarshal(sc.Bytes(), &o), "line %q", sc.Text())
		out = append(out, o)
	}
	return out
}

// csvRows returns the rows one order per item gives, as the CSV export
// writes them (header first).
func csvRows(orders []store.Order) [][]string {
	rows := [][]string{csvHeader}
	for _, o := range orders {
		head := []string{strconv.FormatInt(o.ID, 10), strconv.FormatInt(o.RestaurantID, 10), o.CustomerName, o.Status,
			strconv.FormatInt(o.TotalCents, 10), o.CreatedAt.UTC().Format(time.RFC3339Nano), o.UpdatedAt.UTC().Format(time.RFC3339Nano)}
		if len(o.Items) == 0 {
			rows = append(rows, append(slices.Clone(head), "", "", "", "", ""))
		}
		for _, it := range o.Items {
			rows = append(rows, append(slices.Clone(head), strconv.FormatInt(it.ID, 10), strconv.FormatInt(it.MenuItemID, 10),
				it.Name, strconv.Itoa(it.Quantity), strconv.FormatInt(it.UnitPriceCents, 10)))
		}
	}
	return rows
}

// TestExportStreamsOrders: an export returns every order of the range
// once, oldest first, with its items, in NDJSON by default and in CSV,
// across many pages, with no truncation trailer; from/to select
// created_at in [from, to), a date as to including its day.
func TestExportStreamsOrders(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			a.export.pageSize = 7
			rid, all := seededRestaurant(t, a, 60)
			path := fmt.Sprintf("/restaurants/%d/orders/export", rid)

			resp, body := a.get(path)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			assert.Equal(t, contentNDJSON, resp.Header.Get("Content-Type"))
			assert.Contains(t, resp.Trailer, exportTrailer, "the trailer is declared up front")
			assert.Empty(t, resp.Trailer.Get(exportTrailer), "a complete export has no error trailer")
			assert.Equal(t, all, ndjsonOrders(t, body))

			resp, body = a.get(path + "?format=csv")
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			assert.Equal(t, contentCSV, resp.Header.Get("Content-Type"))
			rows, err := csv.NewReader(strings.NewReader(string(body))).ReadAll()
			require.NoError(t, err)
			assert.Equal(t, csvRows(all), rows)

			from, to := all[5].CreatedAt, all[40].CreatedAt
			var want []store.Order
			for _, o := range all {
				if !o.CreatedAt.Before(from) && o.CreatedAt.Before(to) {
					want = append(want, o)
				}
			}
			q := "?from=" + from.Format(time.RFC3339Nano) + "&to=" + to.Format(time.RFC3339Nano)
			resp, body = a.get(path + strings.ReplaceAll(q, "+", "%2B"))
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			assert.Equal(t, want, ndjsonOrders(t, body))

			day := all[len(all)/2].CreatedAt.UTC().Format(time.DateOnly)
			want = want[:0]
			for _, o := range all {
				if o.CreatedAt.UTC().Format(time.DateOnly) == day {
					want = append(want, o)
				}
			}
			resp, body = a.get(path + "?from=" + day + "&to=" + day)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			assert.Equal(t, want, ndjsonOrders(t, body), "from=to=%s is that whole day", day)

			resp, body = a.get(path + "?format=csv&from=2999-01-01&to=2999-02-01")
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			assert.Equal(t, strings.Join(csvHeader, ",")+"\n", string(body), "an empty range is the header row")
		})
	}
}

// TestExportRefusesBadInput: bad format, times and ranges are 400s and an
// unknown restaurant a 404, as JSON errors, before any stream starts.
func TestExportRefusesBadInput(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"/restaurants/1/orders/export?format=xml", http.StatusBadRequest},
		{"/restaurants/1/orders/export?from=yesterday", http.StatusBadRequest},
		{"/restaurants/1/orders/export?to=2026-13-01", http.StatusBadRequest},
		{"/restaurants/1/orders/export?from=2026-12-02&to=2026-12-01", http.StatusBadRequest},
		{"/restaurants/1/orders/export?from=2026-12-01T10:00:00Z&to=2026-12-01T10:00:00Z", http.StatusBadRequest},
		{"/restaurants/1/orders/export?to=0000-01-01", http.StatusBadRequest},
		{"/restaurants/1/orders/export?from=%zz", http.StatusBadRequest},
		{"/restaurants/0/orders/export", http.StatusBadRequest},
		{"/restaurants/999999/orders/export", http.StatusNotFound},
	} {
		resp, body := a.get(tc.query)
		assert.Equal(t, tc.want, resp.StatusCode, "%s: %s", tc.query, body)
		var e map[string]string
		assert.NoError(t, json.Unmarshal(body, &e), "%s: a JSON error", tc.query)
		assert.NotEmpty(t, e["error"], tc.query)
	}
	code, _ := a.do("POST", "/restaurants/1/orders/export", "")
	assert.Equal(t, http.StatusMethodNotAllowed, code)
}

// failingReader is a store.Reader whose queries fail with a lost
// connection from the (after+1)th on.
type failingReader struct {
	store.Reader
	after   int64
	queries atomic.Int64
}

func (f *failingReader) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if f.queries.Add(1) > f.after {
		return nil, fmt.Errorf("page query: %w", driver.ErrBadConn)
	}
	return f.Reader.QueryContext(ctx, q, args...)
}

// TestExportTruncatedMarker: when the database fails after some pages the
// status is sent already, so the stream says so: NDJSON ends with
// {"error", "truncated": true, "orders": n}, CSV with a "# truncated:"
// line (a CSV reader that skips # comments reads every row before it),
// and both carry the X-Export-Error trailer. A failure before the first
// page is an ordinary 503.
func TestExportTruncatedMarker(t *testing.T) {
	t.Parallel()
	for _, dialect := range dialects {
		t.Run(dialect, func(t *testing.T) {
			t.Parallel()
			a := newTestApp(t, dialect).admin()
			a.export.pageSize = 5
			rid, all := seededRestaurant(t, a, 30)
			path := fmt.Sprintf("/restaurants/%d/orders/export", rid)
			pool := a.export.reader
			t.Cleanup(func() { a.export.reader = pool })

			a.export.reader = &failingReader{Reader: pool, after: 2}
			resp, body := a.get(path)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
			require.Len(t, lines, 11, "two pages of 5, then the marker: %s", body)
			assert.Equal(t, all[:10], ndjsonOrders(t, []byte(strings.Join(lines[:10], "\n"))))
			var marker struct {
				Error     string `json:"error"`
				Truncated bool   `json:"truncated"`
				Orders    int    `json:"orders"`
			}
			require.NoError(t, json.Unmarshal([]byte(lines[10]), &marker))
			assert.True(t, marker.Truncated)
			assert.Equal(t, 10, marker.Orders)
			assert.Contains(t, marker.Error, "database unavailable")
			assert.Equal(t, marker.Error, resp.Trailer.Get(exportTrailer), "the trailer says the same")

			a.export.reader = &failingReader{Reader: pool, after: 2}
			resp, body = a.get(path + "?format=csv")
			require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
			text := string(body)
			assert.Regexp(t, `\n# truncated: database unavailable[^\n]*\(10 orders written\)\n$`, text)
			r := csv.NewReader(strings.NewReader(text))
			r.Comment = '#'
			rows, err := r.ReadAll()
			require.NoError(t, err)
			assert.Equal(t, csvRows(all[:10]), rows)
			assert.Contains(t, resp.Trailer.Get(exportTrailer), "database unavailable")

			a.export.reader = &failingReader{Reader: pool, after: 0}
			resp, body = a.get(path)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
			assert.Contains(t, string(body), `"error"`)
			assert.Empty(t, resp.Trailer.Get(exportTrailer))
		})
	}
}

// FuzzExportCSVRoundTrip: any customer, status and item name — quotes,
// commas, line breaks, control characters, a leading '#', invalid UTF-8 —
// reads back from the CSV export with encoding/csv (skipping '#' comment
// lines, as a reader of a possibly truncated export does) as the same
// fields, one record per item. The one change is a reader's: CR LF inside a
// field reads as LF (encoding/csv normalizes line ends, as RFC 4180 allows).
func FuzzExportCSVRoundTrip(f *testing.F) {
	f.Add("Ada", "Soup", "pending")
	f.Add(`"quoted", with comma`, "line\nbreak", "a\r\nb")
	f.Add("# not a comment", "\x00\x01\x1b[31m\x7f", "\r")
	f.Add("\n# truncated: fake", `""`, "")
	f.Add(" leading space", "tab\there", "\xff\xfe")
	f.Fuzz(func(t *testing.T, customer, item, status string) {
		o := store.Order{ID: 7, RestaurantID: 3, CustomerName: customer, Status: status, TotalCents: 1250,
			CreatedAt: time.Date(2026, 12, 4, 23, 59, 59, 123456000, time.UTC), UpdatedAt: time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC),
			Items: []store.OrderItem{{ID: 1, MenuItemID: 9, Name: item, Quantity: 2, UnitPriceCents: 500}, {ID: 2, MenuItemID: 10, Name: customer, Quantity: 1, UnitPriceCents: 250}}}
		var sb strings.Builder
		bw := bufio.NewWriter(&sb)
		enc := newOrderEncoder(bw, true)
		require.NoError(t, enc.header())
		require.NoError(t, enc.order(&o))
		require.NoError(t, enc.truncated("database unavailable; the export is incomplete", 1))
		require.NoError(t, enc.flush())

		r := csv.NewReader(strings.NewReader(sb.String()))
		r.Comment = '#'
		got, err := r.ReadAll()
		require.NoError(t, err, "%q", sb.String())
		want := csvRows([]store.Order{o})
		for _, row := range want {
			for i := range row {
				row[i] = strings.ReplaceAll(row[i], "\r\n", "\n")
			}
		}
		assert.Equal(t, want, got, "%q", sb.String())
	})
}

// sleepyReader runs every page query after the first inside a PostgreSQL
// statement that also sleeps for a minute, tagged so pg_stat_activity
// finds it, and records the error a query failed with and its context's.
type sleepyReader struct {
	store.Reader
	tag     string
	queries atomic.Int64
	errs    chan error
}

func (s *sleepyReader) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if s.queries.Add(1) > 1 {
		q = "SELECT q.* FROM (" + q + ") AS q CROSS JOIN pg_sleep(60) /* " + s.tag + " */"
	}
	rows, err := s.Reader.QueryContext(ctx, q, args...)
	if err != nil {
		s.errs <- fmt.Errorf("%w (context: %w)", err, ctx.Err())
	}
	return rows, err
}

// TestExportDisconnectCancelsQuery: a client that goes away mid-export
// cancels the page query running in the database. The witness is the
// server: pg_stat_activity shows the (one-minute) query active while the
// client reads, and gone within seconds after the client closes the
// connection — far sooner than the minute it would run uncancelled.
func TestExportDisconnectCancelsQuery(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "postgres").admin()
	a.export.pageSize = 5
	rid, all := seededRestaurant(t, a, 12)
	tag := fmt.Sprintf("export-disconnect-%d", time.Now().UnixNano())
	reader := &sleepyReader{Reader: a.export.reader, tag: tag, errs: make(chan error, 4)}
	a.export.reader = reader
	// running counts the tagged statements active in PostgreSQL; sleeping,
	// those inside pg_sleep. Only the latter witness a running query: pgx
	// prepares the statement first, and its Parse shows as active too, so
	// a client that left during the Parse would cancel the request before
	// the query was sent (a "context already done" error, no 57014).
	count := func(cond string) int {
		var n int
		require.NoError(t, a.db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_stat_activity
			WHERE state = 'active' AND pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'`+cond, tag).Scan(&n))
		return n
	}
	running := func() int { return count("") }
	sleeping := func() int { return count(" AND wait_event = 'PgSleep'") }

	req, err := http.NewRequest("GET", fmt.Sprintf("%s/restaurants/%d/orders/export", a.URL, rid), nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	br := bufio.NewReader(resp.Body)
	for i := range 5 { // the first page arrives before the second is read
		line, err := br.ReadBytes('\n')
		require.NoError(t, err)
		var o store.Order
		require.NoError(t, json.Unmarshal(line, &o))
		assert.Equal(t, all[i].ID, o.ID)
	}
	require.Eventually(t, func() bool { return sleeping() == 1 }, 10*time.Second, 20*time.Millisecond,
		"the second page's query runs in PostgreSQL")

	require.NoError(t, resp.Body.Close()) // before EOF: the client closes the connection
	require.Eventually(t, func() bool { return running() == 0 }, 10*time.Second, 20*time.Millisecond,
		"the query is cancelled in PostgreSQL once the client is gone")
	select {
	case err := <-reader.errs:
		assert.ErrorIs(t, err, context.Canceled, "the request's context was cancelled")
		assert.Contains(t, err.Error(), "57014", "PostgreSQL cancelled the statement (query_canceled)")
	case <-time.After(10 * time.Second):
		t.Fatal("the page query did not return after the client went away")
	}
}

// slowReader delays every page query.
type slowReader struct {
	store.Reader
	delay time.Duration
}

func (s slowReader) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	time.Sleep(s.delay)
	return s.Reader.QueryContext(ctx, q, args...)
}

// TestExportOutlivesServerTimeouts: an export that lasts longer than the
// server's ReadTimeout and WriteTimeout (servio's are 60 s; here 300 ms)
// is complete: the stream lifts the read deadline (which would cancel the
// request's context) and renews the write deadline per page.
func TestExportOutlivesServerTimeouts(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	a.export.pageSize = 5
	rid, all := seededRestaurant(t, a, 30)
	a.export.reader = slowReader{Reader: a.export.reader, delay: 150 * time.Millisecond} // 7 queries: > 1 s
	srv := httptest.NewUnstartedServer(a.Handler())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	b := *a
	b.URL = srv.URL
	start := time.Now()
	resp, body := b.get(fmt.Sprintf("/restaurants/%d/orders/export", rid))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Equal(t, all, ndjsonOrders(t, body))
	assert.Greater(t, time.Since(start), srv.Config.WriteTimeout, "the export outlasted the timeouts")
}

// gatedReader blocks every query until release is closed, announcing each
// on started.
type gatedReader struct {
	store.Reader
	started chan struct{}
	release chan struct{}
}

func (g gatedReader) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	select {
	case g.started <- struct{}{}:
	default: // a later query of an export already counted
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Reader.QueryContext(ctx, q, args...)
}

// TestExportBulkhead: with exportMaxConcurrent exports running, one more
// is refused at once with 503, Retry-After and a JSON error; once they
// end, exports run again.
func TestExportBulkhead(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	gate := gatedReader{Reader: a.export.reader, started: make(chan struct{}, exportMaxConcurrent), release: make(chan struct{})}
	a.export.reader = gate
	done := make(chan int, exportMaxConcurrent)
	for range exportMaxConcurrent {
		go func() {
			req, _ := http.NewRequest("GET", a.URL+"/restaurants/1/orders/export", nil)
			req.Header.Set("Authorization", "Bearer "+a.token)
			done <- statusOf(req)
		}()
	}
	for range exportMaxConcurrent {
		<-gate.started // every export holds its slot, blocked in its first query
	}
	resp, body := a.get("/restaurants/1/orders/export")
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s", body)
	assert.Equal(t, strconv.Itoa(exportRetryAfter), resp.Header.Get("Retry-After"))
	assert.Contains(t, string(body), "too many exports")

	close(gate.release)
	for range exportMaxConcurrent {
		assert.Equal(t, http.StatusOK, <-done)
	}
	a.export.reader = gate.Reader
	resp, body = a.get("/restaurants/1/orders/export")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
}
