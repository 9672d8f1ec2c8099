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
