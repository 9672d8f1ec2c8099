package health

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/servio/perfkit/internal/redact"
)

// HTTP returns a check that GETs rawURL with client (the application's own,
// so its pool and middleware are reused; nil means http.DefaultClient) and
// expects status expectStatus (0: any 2xx). It reports responseTime (ms).
// The body is discarded after at most 64 KiB. The URL's credentials never
// appear in the output. ComponentType is "component".
func HTTP(client *http.Client, rawURL string, expectStatus int) CheckFunc {
	if client == nil {
		client = http.DefaultClient
	}
	// Parsed with the redaction rules before anything can quote rawURL:
	// url.Parse's own error quotes the raw URL, and a password holding an
	// unescaped '/' would be read as host and port.
	u, perr := redact.ParseURL(rawURL)
	shown := redact.URL(rawURL)
	if perr == nil {
		shown = redact.URL(u.String())
	}
	return func(ctx context.Context) Result {
		res := Result{ComponentType: "component"}
		if perr != nil {
			res.Err = fmt.Errorf("health: bad URL: %w", perr)
			return res
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			res.Err = fmt.Errorf("health: GET %s: %w", shown, redact.Error(err))
			return res
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		lat := time.Since(t0)
		res.Measurements = []Measurement{{Name: "responseTime", Value: ms(lat), Unit: "ms"}}
		if err != nil {
			res.Err = redact.Error(err) // *url.Error prints the URL
			return res
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		ok := resp.StatusCode == expectStatus || expectStatus == 0 && resp.StatusCode/100 == 2
		if !ok {
			want := "2xx"
			if expectStatus != 0 {
				want = fmt.Sprint(expectStatus)
			}
			res.Err = fmt.Errorf("health: GET %s: status %d, want %s", shown, resp.StatusCode, want)
		}
		return res
	}
}
