package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/internal/redact"
)

// smsMessage is one text to send. Key is its idempotency key: the same key
// never texts the customer twice, however often it is sent (see
// smsClient.send).
type smsMessage struct {
	To   string
	Body string
	Key  string
}

// e164 matches an E.164 phone number: "+", a country code that does not
// start with 0, and at most 15 digits in all.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{1,14}$`)

// validPhone reports whether s is an E.164 number ("+14155550100").
func validPhone(s string) bool { return e164.MatchString(s) }

// idempotencyHeader carries a send's idempotency key, as Twilio's own
// requests do; the simulated upstream honours it.
const idempotencyHeader = "I-Twilio-Idempotency-Token"

// smsClient sends texts through a Twilio-compatible Messages API:
//
//	POST {base}/2010-04-01/Accounts/{sid}/Messages.json
//	Authorization: Basic sid:token
//	I-Twilio-Idempotency-Token: {key}
//	To=…&From=…&Body=…  (application/x-www-form-urlencoded)
//
// answered 201 with the message's JSON ({"sid": "SM…", "status": "queued"}).
// It is safe for concurrent use.
type smsClient struct {
	http    *http.Client
	baseURL string // without the /2010-04-01 path
	sid     string
	token   string
	from    string
}

// send posts m and returns the upstream's message sid. A failing status is
// an *httpclient.StatusError carrying the upstream's Retry-After.
func (c *smsClient) send(ctx context.Context, m smsMessage) (string, error) {
	endpoint, err := url.JoinPath(c.baseURL, "2010-04-01", "Accounts", c.sid, "Messages.json")
	if err != nil {
		return "", redact.Error(fmt.Errorf("sms: %w", err))
	}
	form := url.Values{"To": {m.To}, "From": {c.from}, "Body": {m.Body}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", redact.Error(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(idempotencyHeader, m.Key)
	req.SetBasicAuth(c.sid, c.token)
	resp, err := httpclient.CheckStatus(c.http.Do(req))
	if err != nil {
		return "", redact.Error(err)
	}
	defer resp.Body.Close()
	var out struct {
		SID string `json:"sid"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return "", fmt.Errorf("sms upstream: bad response: %w", err)
	}
	if out.SID == "" {
		return "", errors.New("sms upstream: response without a message sid")
	}
	return out.SID, nil
}
