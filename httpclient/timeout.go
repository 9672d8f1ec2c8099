package httpclient

import (
	"context"
	"io"
	"net/http"
	"time"
)

// timeoutTransport bounds a request, its retries and the reading of its
// body through the request context. New uses it instead of
// http.Client.Timeout because for any RoundTripper other than
// *http.Transport net/http enforces Client.Timeout with a timer goroutine and
// about a dozen allocations per request.
type timeoutTransport struct {
	next http.RoundTripper
	d    time.Duration
}

func (t *timeoutTransport) CloseIdleConnections() { closeIdle(t.next) }

// closeIdle forwards http.Client.CloseIdleConnections through a layer.
func closeIdle(rt http.RoundTripper) {
	if c, ok := rt.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

func (t *timeoutTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if dl, ok := ctx.Deadline(); (ok && time.Until(dl) <= t.d) || req.Header.Get("Upgrade") != "" {
		// The caller's deadline is already tighter, or the connection is
		// being upgraded and must outlive the timeout.
		return t.next.RoundTrip(req)
	}
	ctx, cancel := context.WithTimeout(ctx, t.d)
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil || resp.Body == nil {
		// A custom base may answer with no body (http.Client then supplies
		// an empty one): nothing left to bound.
		cancel()
		return resp, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody releases the timeout's timer once the body is read to EOF or
// closed. net/http has returned the connection to the pool by the time Read
// reports io.EOF or Close returns, so cancelling then cannot kill it.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.cancel()
	}
	return n, err
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
