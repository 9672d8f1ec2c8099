package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
)

// allowedUploads maps the sniffed content types servio accepts to the
// extension the stored file gets.
var allowedUploads = map[string]string{
	"image/png":                 ".png",
	"image/jpeg":                ".jpg",
	"image/gif":                 ".gif",
	"image/webp":                ".webp",
	"application/pdf":           ".pdf",
	"text/plain; charset=utf-8": ".txt",
}

// multipartOverhead is the room allowed for multipart headers and
// boundaries on top of the file size limit.
const multipartOverhead = 64 << 10

type uploadResponse struct {
	ID          string `json:"id"`
	Size        int64  `json:"size"`
	ContentType string `json:"content_type"`
	SHA256      string `json:"sha256"`
}

// upload stores one file, sent either as the raw request body or as the
// "file" part of a multipart form. The type is sniffed from the content
// (the client's claim is ignored), the name is random, and nothing is left
// on disk when the file is too large (413) or refused (415).
func (a *App) upload(w http.ResponseWriter, r *http.Request) {
	p, err := a.authenticate(r)
	if err == nil && !p.isStaff() {
		err = forbidden("uploads (staff only)")
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	limit := a.cfg.UploadMaxBytes
	r.Body = http.MaxBytesReader(w, r.Body, limit+multipartOverhead)
	var src io.Reader = r.Body
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		part, err := firstFilePart(multipart.NewReader(r.Body, params["boundary"]), limit)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		defer part.Close()
		src = part
	} else if r.ContentLength > limit {
		a.fail(w, r, &http.MaxBytesError{Limit: limit})
		return
	}
	head := make([]byte, 512)
	n, err := io.ReadFull(src, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		a.fail(w, r, uploadReadError(err, limit))
		return
	}
	head = head[:n]
	if n == 0 {
		a.fail(w, r, badRequest("upload is empty"))
		return
	}
	ctype := http.DetectContentType(head)
	ext, ok := allowedUploads[ctype]
	if !ok {
		writeError(w, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %s is not accepted (png, jpeg, gif, webp, pdf, plain text)", ctype))
		return
	}
	id, err := randomName()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	dir := filepath.Join(a.cfg.DataDir, "uploads")
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	keep := false
	defer func() {
		if !keep {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	// Copy at most limit+1 bytes: one byte more than allowed means too large.
	size, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(io.MultiReader(bytes.NewReader(head), src), limit+1))
	if err != nil {
		a.fail(w, r, uploadReadError(err, limit))
		return
	}
	if size > limit {
		a.fail(w, r, &http.MaxBytesError{Limit: limit})
		return
	}
	if err := tmp.Close(); err != nil {
		a.fail(w, r, err)
		return
	}
	name := id + ext
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		a.fail(w, r, err)
		return
	}
	keep = true
	writeJSON(w, http.StatusCreated, uploadResponse{ID: name, Size: size, ContentType: ctype, SHA256: hex.EncodeToString(h.Sum(nil))})
}

// firstFilePart returns the multipart part named "file".
func firstFilePart(mr *multipart.Reader, limit int64) (*multipart.Part, error) {
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, badRequest(`multipart form has no "file" part`)
		}
		if err != nil {
			return nil, uploadReadError(err, limit)
		}
		if p.FormName() == "file" {
			return p, nil
		}
		_ = p.Close()
	}
}

// uploadReadError keeps 413 for an oversized body and calls anything else
// a malformed upload.
func uploadReadError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &http.MaxBytesError{Limit: limit}
	}
	return badRequest("malformed upload: %v", err)
}

func randomName() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
