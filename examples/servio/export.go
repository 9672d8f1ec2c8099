package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/servio/perfkit/metrics"
	"github.com/servio/perfkit/resilience"
)

// GET /restaurants/{id}/orders/export?from=&to=&format=ndjson|csv streams a
// restaurant's orders with their items to its staff (and admins):
//
//   - from and to are RFC 3339 times or dates (YYYY-MM-DD, UTC days); the
//     range is created_at in [from, to). A date as to includes that whole
//     day. Both are optional: from defaults to the first order, to to the
//     moment the request arrived, so an export of a busy restaurant ends.
//     The range is not bounded in length: memory is one page whatever it
//     spans, and what a long range costs is time.
//   - format ndjson (the default): one order per line, the JSON of
//     GET /orders/{id}; csv: a header row, then one row per order item
//     (order columns repeated; an order without items is one row with empty
//     item columns), written by encoding/csv (RFC 4180 quoting).
//   - Orders are read oldest first in keyset pages of exportPageSize
//     ((created_at, id) after the last one seen) and each page is flushed to
//     the client before the next is read; no database connection is held
//     while the client reads (see store.ExportOrders).
//   - A client that goes away cancels the request's context, and with it the
//     page query running in the database.
//   - A database failure before the first page is an ordinary JSON error
//     (503, 500, …). After it, the status is sent already: the stream ends
//     with a marker — NDJSON a last line {"error": "...", "truncated": true,
//     "orders": n}; CSV a last line "# truncated: ..." — and the HTTP
//     trailer X-Export-Error carries the same message. A stream without
//     the marker and without the trailer is complete.
//   - At most exportMaxConcurrent exports run at once per instance; more
//     get 503 with Retry-After. Exports do not pass through the adaptive
//     limiter: a stream lasts as long as its data, and its duration is not
//     a latency sample of the service.
//   - The server's read and write timeouts would cut a long stream: the
//     read deadline is lifted for the stream, and the write deadline is
//     renewed before each page (exportWriteTimeout), so only a client that
//     takes no page for that long is cut.
const (
	exportPageSize      = store.DefaultExportPage
	exportMaxConcurrent = 4
	exportWriteTimeout  = 30 * time.Second
	exportRetryAfter    = 5 // seconds, on a 503 for too many exports
)

// Content types of the export formats.
const (
	contentNDJSON = "application/x-ndjson"
	contentCSV    = "text/csv; charset=utf-8"
)

// exportTrailer is the HTTP trailer that says why a stream was cut.
const exportTrailer = "X-Export-Error"

// csvHeader names the CSV export's columns.
var csvHeader = []string{"order_id", "restaurant_id", "customer_name", "status", "total_cents", "created_at", "updated_at",
	"item_id", "menu_item_id", "item_name", "quantity", "unit_price_cents"}

// exporter serves the export route.
type exporter struct {
	a *App
	// reader is what the pages are read through: the store's replica
	// reader (a replica with DATABASE_REPLICA_URLS, else the pool; tests
	// put failing and slow readers here).
	reader   store.Reader
	gate     *resilience.Bulkhead
	pageSize int
	now      func() time.Time
}

func newExporter(a *App, mp *metrics.Provider) (*exporter, error) {
	gate, err := resilience.NewBulkhead(resilience.BulkheadConfig{Name: "orders-export", MaxConcurrent: exportMaxConcurrent, MeterProvider: mp})
	if err != nil {
		return nil, err
	}
	return &exporter{a: a, reader: a.st.ReplicaReader(), gate: gate, pageSize: exportPageSize, now: time.Now}, nil
}

// exportRequest is a validated export request.
type exportRequest struct {
	q   store.ExportQuery
	csv bool
}

// parseExport validates the query string of an export of restaurant rid.
func parseExport(rawQuery string, rid int64, now time.Time) (exportRequest, error) {
	params, err := url.ParseQuery(rawQuery)
	if err != nil {
		return exportRequest{}, badRequest("malformed query string")
	}
	req := exportRequest{q: store.ExportQuery{RestaurantID: rid, To: now}}
	switch params.Get("format") {
	case "", "ndjson":
	case "csv":
		req.csv = true
	default:
		return req, badRequest("format must be ndjson or csv")
	}
	if v := params.Get("from"); v != "" {
		if req.q.From, err = parseExportTime(v, false); err != nil {
			return req, badRequest("from must be an RFC 3339 time or a date (YYYY-MM-DD), got %q", v)
		}
	}
	if v := params.Get("to"); v != "" {
		if req.q.To, err = parseExportTime(v, true); err != nil {
			return req, badRequest("to must be an RFC 3339 time or a date (YYYY-MM-DD), got %q", v)
		}
	}
	if !req.q.From.IsZero() && !req.q.From.Before(req.q.To) {
		return req, badRequest("from must be before to (default: now)")
	}
	return req, nil
}

// parseExportTime parses an RFC 3339 time or a UTC date; a date as the end
// of a range (end) stands for the midnight after it.
func parseExportTime(v string, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return checkYear(t.UTC())
	}
	t, err := time.Parse(time.DateOnly, v)
	if err != nil {
		return time.Time{}, err
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return checkYear(t)
}

// checkYear refuses times the databases' timestamp forms cannot order
// (SQLite compares fixed-width text: years 1..9999).
func checkYear(t time.Time) (time.Time, error) {
	if t.Year() < 1 || t.Year() > 9998 {
		return time.Time{}, errors.New("year out of range")
	}
	return t, nil
}

func (e *exporter) serve(w http.ResponseWriter, r *http.Request) {
	rid, err := pathID(r, "id")
	if err == nil {
		err = e.a.authStaff(r, rid)
	}
	var req exportRequest
	if err == nil {
		req, err = parseExport(r.URL.RawQuery, rid, e.now())
	}
	if err != nil {
		e.a.fail(w, r, err)
		return
	}
	req.q.PageSize = e.pageSize
	err = e.gate.Do(r.Context(), func(ctx context.Context) error {
		e.stream(w, r.WithContext(ctx), req)
		return nil
	})
	if errors.Is(err, resilience.ErrBulkheadFull) {
		w.Header().Set("Retry-After", strconv.Itoa(exportRetryAfter))
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"error": "too many exports in progress; retry in " + strconv.Itoa(exportRetryAfter) + " s", "retry_after": exportRetryAfter})
	}
}

// stream writes the export; see the route's documentation above.
func (e *exporter) stream(w http.ResponseWriter, r *http.Request, req exportRequest) {
	rc := http.NewResponseController(w)
	// The request is read: the server's read deadline would only cancel
	// the request's context mid-stream. The write deadline is renewed
	// before each page. (Both unsupported only under a test recorder.)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := newOrderEncoder(bw, req.csv)
	started, n := false, 0
	err := e.a.st.ExportOrders(r.Context(), e.reader, req.q, func(page []store.Order) error {
		if !started {
			started = true
			e.start(w, req)
			if err := enc.header(); err != nil {
				return err
			}
		}
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteTimeout))
		for i := range page {
			if err := enc.order(&page[i]); err != nil {
				return err
			}
		}
		n += len(page)
		if err := enc.flush(); err != nil {
			return err
		}
		return rc.Flush()
	})
	switch {
	case !started && err != nil:
		e.a.fail(w, r, err)
	case !started:
		// An empty range: the headers and, for CSV, the header row.
		e.start(w, req)
		if enc.header() == nil {
			_ = enc.flush()
		}
	case err != nil && r.Context().Err() != nil:
		// The client went away; nobody reads the marker.
	case err != nil:
		msg := exportFailure(err)
		e.a.log.ErrorContext(r.Context(), "export truncated", "path", r.URL.Path, "orders", n, "err", err)
		w.Header().Set(exportTrailer, msg)
		if enc.truncated(msg, n) == nil {
			_ = enc.flush()
		}
	}
}

// start sends the stream's headers.
func (e *exporter) start(w http.ResponseWriter, req exportRequest) {
	h := w.Header()
	ext := ".ndjson"
	h.Set("Content-Type", contentNDJSON)
	if req.csv {
		ext = ".csv"
		h.Set("Content-Type", contentCSV)
	}
	h.Set("Content-Disposition", `attachment; filename="orders-`+strconv.FormatInt(req.q.RestaurantID, 10)+ext+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("Trailer", exportTrailer)
	w.WriteHeader(http.StatusOK)
}

// exportFailure is what the client is told about err: the kind of failure,
// not its detail (which is logged).
func exportFailure(err error) string {
	switch {
	case dbUnavailable(err):
		return "database unavailable; the export is incomplete"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out; the export is incomplete"
	}
	return "internal error; the export is incomplete"
}

// orderEncoder writes orders in one of the export formats.
type orderEncoder struct {
	csv    *csv.Writer
	json   *json.Encoder
	w      *bufio.Writer
	record []string
}

func newOrderEncoder(w *bufio.Writer, asCSV bool) *orderEncoder {
	if asCSV {
		return &orderEncoder{csv: csv.NewWriter(w), w: w, record: make([]string, len(csvHeader))}
	}
	return &orderEncoder{json: json.NewEncoder(w), w: w}
}

// header writes the CSV header row (nothing for NDJSON).
func (e *orderEncoder) header() error {
	if e.csv == nil {
		return nil
	}
	return e.csv.Write(csvHeader)
}

// order writes one order: an NDJSON line, or a CSV row per item.
func (e *orderEncoder) order(o *store.Order) error {
	if e.csv == nil {
		return e.json.Encode(o)
	}
	rec := e.record
	rec[0], rec[1] = strconv.FormatInt(o.ID, 10), strconv.FormatInt(o.RestaurantID, 10)
	rec[2], rec[3], rec[4] = o.CustomerName, o.Status, strconv.FormatInt(o.TotalCents, 10)
	rec[5], rec[6] = o.CreatedAt.UTC().Format(time.RFC3339Nano), o.UpdatedAt.UTC().Format(time.RFC3339Nano)
	if len(o.Items) == 0 {
		clear(rec[7:])
		return e.csv.Write(rec)
	}
	for _, it := range o.Items {
		rec[7], rec[8] = strconv.FormatInt(it.ID, 10), strconv.FormatInt(it.MenuItemID, 10)
		rec[9], rec[10], rec[11] = it.Name, strconv.Itoa(it.Quantity), strconv.FormatInt(it.UnitPriceCents, 10)
		if err := e.csv.Write(rec); err != nil {
			return err
		}
	}
	return nil
}

// flush writes what the encoder buffered through to the response writer.
func (e *orderEncoder) flush() error {
	if e.csv != nil {
		e.csv.Flush()
		if err := e.csv.Error(); err != nil {
			return err
		}
	}
	return e.w.Flush()
}

// truncated ends a cut stream with its marker line.
func (e *orderEncoder) truncated(msg string, orders int) error {
	if e.csv == nil {
		return e.json.Encode(struct {
			Error     string `json:"error"`
			Truncated bool   `json:"truncated"`
			Orders    int    `json:"orders"`
		}{msg, true, orders})
	}
	// No newline can be in msg (it is one of exportFailure's), so the
	// marker is one line; a record never starts with '#' (order_id leads).
	e.csv.Flush()
	_, err := e.w.WriteString("# truncated: " + msg + " (" + strconv.Itoa(orders) + " orders written)\n")
	return err
}
