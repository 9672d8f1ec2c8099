package main

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

func multipartBody(t *testing.T, field string, content []byte) (*bytes.Buffer, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, err := mw.CreateFormFile(field, "../../etc/passwd.png")
	require.NoError(t, err)
	_, err = fw.Write(content)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return &buf, mw.FormDataContentType()
}

func TestUploadLimits(t *testing.T) {
	t.Parallel()
	const limit = 4096
	cfg := testConfig(t, "sqlite")
	cfg.UploadMaxBytes = limit
	a := startApp(t, cfg).admin()
	pad := func(n int) []byte {
		return append(append([]byte{}, pngHeader...), bytes.Repeat([]byte{0}, n-len(pngHeader))...)
	}
	post := func(ctype string, body []byte, chunked bool) (int, []byte) {
		var r = bytes.NewReader(body)
		req, err := http.NewRequest("POST", a.URL+"/uploads", r)
		require.NoError(t, err)
		if chunked {
			req.ContentLength = -1 // no Content-Length: the limit must hold while reading
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Authorization", "Bearer "+a.token)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out bytes.Buffer
		_, _ = out.ReadFrom(resp.Body)
		return resp.StatusCode, out.Bytes()
	}
	mpOK, mpOKType := multipartBody(t, "file", pad(limit))
	mpBig, mpBigType := multipartBody(t, "file", pad(limit+1))
	mpNone, mpNoneType := multipartBody(t, "other", pad(100))
	tests := []struct {
		name    string
		ctype   string
		body    []byte
		chunked bool
		want    int
	}{
		{"raw at the limit", "image/png", pad(limit), false, http.StatusCreated},
		{"raw one byte over", "image/png", pad(limit + 1), false, http.StatusRequestEntityTooLarge},
		{"raw over, chunked", "image/png", pad(limit + 1), true, http.StatusRequestEntityTooLarge},
		{"raw far over, chunked", "image/png", pad(limit * 40), true, http.StatusRequestEntityTooLarge},
		{"multipart at the limit", mpOKType, mpOK.Bytes(), false, http.StatusCreated},
		{"multipart one byte over", mpBigType, mpBig.Bytes(), false, http.StatusRequestEntityTooLarge},
		{"multipart without file part", mpNoneType, mpNone.Bytes(), false, http.StatusBadRequest},
		{"executable refused", "image/png", append([]byte("\x7fELF"), make([]byte, 100)...), false, http.StatusUnsupportedMediaType},
		{"html refused", "text/plain", []byte("<html><script>alert(1)</script></html>"), false, http.StatusUnsupportedMediaType},
		{"empty", "image/png", nil, false, http.StatusBadRequest},
	}
	for _, tc := range tests {
		code, body := post(tc.ctype, tc.body, tc.chunked)
		assert.Equal(t, tc.want, code, "%s: %s", tc.name, body)
	}
	entries, err := os.ReadDir(filepath.Join(cfg.DataDir, "uploads"))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		assert.Regexp(t, `^[0-9a-f]{32}\.png$`, e.Name(), "stored names are generated, never the client's")
	}
	assert.Len(t, names, 2, "only the two accepted uploads are on disk, no temp files: %v", names)
}

// TestUploadDefaultLimit checks the default 10 MiB limit end to end.
func TestUploadDefaultLimit(t *testing.T) {
	t.Parallel()
	a := newTestApp(t, "sqlite").admin()
	body := append(append([]byte{}, pngHeader...), make([]byte, defaultUploadMax+1-len(pngHeader))...)
	post := func(b []byte) (*http.Response, error) {
		req, err := http.NewRequest("POST", a.URL+"/uploads", bytes.NewReader(b))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "image/png")
		req.Header.Set("Authorization", "Bearer "+a.token)
		return http.DefaultClient.Do(req)
	}
	resp, err := post(body)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	resp, err = post(body[:defaultUploadMax])
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusCreated, resp.StatusCode)
}
