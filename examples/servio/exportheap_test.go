package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/servio/perfkit/examples/servio/internal/store"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// heapInuse is runtime.MemStats.HeapInuse read through runtime/metrics
// (no stop-the-world): heap spans holding objects, used or not.
func heapInuse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

// exportHeap streams path to io.Discard and returns the bytes and lines
// received and the largest growth of the heap in use over its level before
// the request, sampled every 2 ms while the stream runs.
func exportHeap(t testing.TB, a *testApp, path string) (bytes, lines int64, growth uint64) {
	t.Helper()
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	base := heapInuse(s)
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, heapInuse(s))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	req, err := http.NewRequest("GET", a.URL+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	cw := &lineCounter{}
	_, err = io.Copy(cw, resp.Body)
	resp.Body.Close()
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Empty(t, resp.Trailer.Get(exportTrailer), "the export is complete")
	if peak < base {
		return cw.bytes, cw.lines, 0
	}
	return cw.bytes, cw.lines, peak - base
}

// lineCounter is an io.Writer that keeps only counts.
type lineCounter struct{ bytes, lines int64 }

func (c *lineCounter) Write(b []byte) (int, error) {
	c.bytes += int64(len(b))
	for _, x := range b {
		if x == '\n' {
			c.lines++
		}
	}
	return len(b), nil
}

// exportHeapRun is one measured export.
type exportHeapRun struct {
	orders, bytes int64
	growth        uint64 // largest heap-in-use growth during the export
}

// measureExportHeap seeds large orders into one restaurant on SQLite and
// measures an export of the oldest small of them and one of all of them.
// The collector runs at GOGC=10 meanwhile, so garbage waiting for a cycle
// (at the default, up to the live heap's size) does not hide what the
// export keeps.
func measureExportHeap(tb testing.TB, small, large int) (exportHeapRun, exportHeapRun) {
	cfg := testConfig(tb, "sqlite")
	cfg.DemoData, cfg.RateLimit = false, false
	a := startApp(tb, cfg).admin()
	ctx := context.Background()
	start := time.Now()
	require.NoError(tb, a.st.Seed(ctx, store.SeedOptions{Restaurants: 1, Items: 10, Orders: large}))
	tb.Logf("seeded %d orders in %s", large, time.Since(start).Round(time.Millisecond))
	var rid int64
	var cut string
	require.NoError(tb, a.db.QueryRowContext(ctx, "SELECT MAX(id) FROM restaurants").Scan(&rid))
	require.NoError(tb, a.db.QueryRowContext(ctx, "SELECT created_at FROM orders WHERE restaurant_id = ? ORDER BY created_at, id LIMIT 1 OFFSET ?", rid, small).Scan(&cut))
	path := fmt.Sprintf("/restaurants/%d/orders/export", rid)
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	var runs [2]exportHeapRun
	for i, p := range []string{path + "?to=" + url.QueryEscape(cut), path} {
		start := time.Now()
		runs[i].bytes, runs[i].orders, runs[i].growth = exportHeap(tb, a, p)
		tb.Logf("%d orders: %d bytes, heap growth %d KiB (%s)", runs[i].orders, runs[i].bytes, runs[i].growth>>10, time.Since(start).Round(time.Millisecond))
	}
	return runs[0], runs[1]
}

// TestExportHeapFlat: exporting 10x the orders grows the heap no more than
// the smaller export does (plus a margin for the collector's timing), and
// far less than the stream's size: memory is a page, not the export. Not
// parallel, so no other test's allocations are measured with it. The test
// command runs it at 1,000 vs 10,000 orders (SQLite under -race seeds
// about 300 orders a second); BenchmarkExportHeap measures 10,000 vs
// 100,000.
func TestExportHeapFlat(t *testing.T) {
	checkExportHeap(t, 1_000, 10_000)
}

// BenchmarkExportHeap is TestExportHeapFlat at 10,000 vs 100,000 orders,
// reporting the heap growth of each export (one iteration: the seeding is
// the cost, and the figures are memory, not time).
func BenchmarkExportHeap(b *testing.B) {
	for b.Loop() {
		s, l := checkExportHeap(b, 10_000, 100_000)
		b.ReportMetric(float64(s.growth)/(1<<20), "MiB-heap-10k")
		b.ReportMetric(float64(l.growth)/(1<<20), "MiB-heap-100k")
		b.ReportMetric(float64(l.bytes)/(1<<20), "MiB-streamed-100k")
	}
}

func checkExportHeap(tb testing.TB, small, large int) (exportHeapRun, exportHeapRun) {
	s, l := measureExportHeap(tb, small, large)
	require.InDelta(tb, small, s.orders, float64(small)/100, "the small export has about %d orders", small)
	require.EqualValues(tb, large, l.orders)
	const margin = 4 << 20 // collector timing at GOGC=10 on a live heap of a few MiB
	assert.LessOrEqual(tb, l.growth, s.growth+margin,
		"10x the orders must not grow the heap (%d: %d KiB, %d: %d KiB)", small, s.growth>>10, large, l.growth>>10)
	assert.Less(tb, l.growth, uint64(l.bytes)/2,
		"the heap grows far less than the %d bytes streamed (grew %d KiB): nothing buffers the export", l.bytes, l.growth>>10)
	return s, l
}
