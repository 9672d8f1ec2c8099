package faults

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHostileRequests sends a table of hostile requests to one instance:
// each gets a 4xx with a JSON error, nothing is stored, nothing panics, and
// the service answers normally afterwards.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	a := startServio(t, "DATA_DIR="+dataDir)
	_, b := a.status("GET", "/restaurants/1/menu", nil)
	items := jsonOf[menu](t, b).Items
	require.NotEmpty(t, items)
	okItem := items[0].ID

	deep := strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000)
	huge := `{"restaurant_id":1,"customer_name":"` + strings.Repeat("x", 11<<20) + `","items":[]}`
	order := func(extra string) string {
		return `{"restaurant_id":1,"customer_name":"eve","items":[{"menu_item_id":` + itoa(okItem) + `,"quantity":` + extra + `}]}`
	}
	tests := []struct {
		name, method, path, body string
	}{
		{"malformed JSON", "POST", "/orders", `{"restaurant_id":1,`},
		{"unknown field", "POST", "/orders", `{"restaurant_id":1,"customer_name":"x","items":[],"admin":true}`},
		{"deep JSON", "POST", "/orders", deep},
		{"huge body", "POST", "/orders", huge},
		{"invalid UTF-8 name", "POST", "/orders", "{\"restaurant_id\":1,\"customer_name\":\"\xff\xfe\",\"items\":[{\"menu_item_id\":" + itoa(okItem) + ",\"quantity\":1}]}"},
		{"negative quantity", "POST", "/orders", order("-1")},
		{"zero quantity", "POST", "/orders", order("0")},
		{"overflowing quantity", "POST", "/orders", order("99999999999999999999")},
		{"float quantity", "POST", "/orders", order("1.5")},
		{"no items", "POST", "/orders", `{"restaurant_id":1,"customer_name":"x","items":[]}`},
		{"unknown menu item", "POST", "/orders", `{"restaurant_id":1,"customer_name":"x","items":[{"menu_item_id":987654321,"quantity":1}]}`},
		{"SQL-ish id in path", "GET", "/orders/1;DROP%20TABLE%20orders", ""},
		{"negative id", "GET", "/orders/-1", ""},
		{"overflowing id", "GET", "/restaurants/99999999999999999999/menu", ""},
		{"glob in id", "GET", "/restaurants/*/menu", ""},
		{"negative price", "PATCH", "/menu-items/" + itoa(okItem), `{"price_cents":-5}`},
		{"overflowing price", "POST", "/restaurants/1/menu", `{"name":"x","price_cents":1e300}`},
		{"empty menu name", "POST", "/restaurants/1/menu", `{"name":"","price_cents":100}`},
		{"bad status", "PATCH", "/orders/1", `{"status":"'; DELETE FROM orders; --"}`},
		{"empty question", "POST", "/assistant/query", `{"question":"   "}`},
		{"huge question", "POST", "/assistant/query", `{"question":"` + strings.Repeat("?", 5000) + `"}`},
		{"login missing password", "POST", "/auth/login", `{"email":"manager@servio.dev"}`},
	}
	ordersBefore := orderCount(t, a)
	for _, tt := range tests {
		st, body := a.status(tt.method, tt.path, tt.body)
		assert.True(t, st >= 400 && st < 500, "%s: want a 4xx, got %d: %.200s", tt.name, st, body)
		if st != 404 || strings.HasPrefix(string(body), "{") {
			assert.Contains(t, string(body), `"error"`, "%s: error body must be JSON {\"error\": …}: %.200s", tt.name, body)
		}
	}
	assert.Equal(t, ordersBefore, orderCount(t, a), "hostile requests must store no order")
	assert.Equal(t, items[0].PriceCents, priceOf(t, a, 1, okItem), "hostile requests must not change prices")

	t.Run("uploads", func(t *testing.T) {
		for _, name := range []string{"../../etc/passwd", "..\\..\\evil.png", "/abs/path.png", "a\x00b.png"} {
			st, body := upload(t, a, name, "image/png", pngBytes())
			assert.Less(t, st, 500, "upload %q: %s", name, body)
		}
		st, body := upload(t, a, "big.png", "image/png", append(pngBytes(), make([]byte, 11<<20)...))
		assert.Equal(t, http.StatusRequestEntityTooLarge, st, "an 11 MiB upload must be refused: %s", body)
		st, body = upload(t, a, "x.exe", "application/x-msdownload", []byte("MZ\x90\x00 not an image"))
		assert.True(t, st >= 400 && st < 500, "a disallowed content type must be a 4xx: %d %s", st, body)
		// nothing was written outside the uploads directory
		for _, p := range []string{filepath.Join(dataDir, "..", "evil.png"), filepath.Join(filepath.Dir(dataDir), "passwd")} {
			_, err := os.Stat(p)
			assert.True(t, os.IsNotExist(err), "upload escaped to %s", p)
		}
	})

	st, _ := a.status("GET", "/health/ready", nil)
	assert.Equal(t, 200, st, "the service must still be healthy after the hostile table")
	assert.NotContains(t, a.logs.String(), "panic", "no handler may panic")
}

func orderCount(t *testing.T, a *instance) int {
	t.Helper()
	st, b := a.status("GET", "/restaurants/1/orders?limit=100", nil)
	require.Equal(t, 200, st, "%s", b)
	type page struct {
		Orders []struct{ ID int64 } `json:"orders"`
	}
	return len(jsonOf[page](t, b).Orders)
}

func upload(t *testing.T, a *instance, filename, contentType string, data []byte) (int, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := make(map[string][]string)
	h["Content-Disposition"] = []string{`form-data; name="file"; filename="` + filename + `"`}
	h["Content-Type"] = []string{contentType}
	pw, err := mw.CreatePart(h)
	require.NoError(t, err)
	_, _ = pw.Write(data)
	require.NoError(t, mw.Close())
	req, err := http.NewRequest("POST", a.URL+"/uploads", &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+a.authToken())
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

func pngBytes() []byte {
	return []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\x00\x01\x00\x00\x05\x00\x01\r\n-\xb4\x00\x00\x00\x00IEND\xaeB`\x82")
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
