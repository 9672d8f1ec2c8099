package bench

import (
	"net/http"
	"testing"

	"github.com/failsafe-go/failsafe-go/adaptivethrottler"
	"github.com/failsafe-go/failsafe-go/failsafehttp"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/servio/perfkit/httpclient"
	"github.com/servio/perfkit/internal/benchcpu"
)

// okTransport answers every request with one preallocated 200, so the
// benchmarks measure the throttles, not a network.
type okTransport struct{ resp *http.Response }

func (t okTransport) RoundTrip(*http.Request) (*http.Response, error) { return t.resp, nil }

// BenchmarkThrottleAdmit measures admitting a request to a healthy host
// and recording its outcome: perfkit's per-host httpclient.ThrottleTransport
// against failsafe-go's adaptivethrottler, as a bare permit
// (AcquirePermit + RecordSuccess) and as an http.RoundTripper
// (failsafehttp.NewRoundTripper), each serial and parallel.
func BenchmarkThrottleAdmit(b *testing.B) {
	ok := okTransport{resp: &http.Response{StatusCode: http.StatusOK, Body: http.NoBody}}
	pk, err := httpclient.NewThrottle(ok, httpclient.ThrottleConfig{MeterProvider: noop.NewMeterProvider()})
	if err != nil {
		b.Fatal(err)
	}
	defer pk.Close()
	// failsafe-go's equivalent of K 2 is a success-rate threshold of 1/2
	// (failure rate 0.5) over the same 2-minute window and 10 executions.
	fs := adaptivethrottler.NewBuilder[*http.Response]().WithFailureRateThreshold(0.5, 10, 2*60e9).Build()
	fsRT := failsafehttp.NewRoundTripper(ok, fs)
	req, err := http.NewRequest(http.MethodGet, "http://upstream.test/v1/items", nil)
	if err != nil {
		b.Fatal(err)
	}
	cases := []struct {
		name string
		body func()
	}{
		{"perfkit", func() {
			if _, err := pk.RoundTrip(req); err != nil {
				b.Fatal(err)
			}
		}},
		{"failsafe-go-permit", func() {
			if err := fs.AcquirePermit(); err != nil {
				b.Fatal(err)
			}
			_, _ = ok.RoundTrip(req)
			fs.RecordSuccess()
		}},
		{"failsafe-go-roundtripper", func() {
			if _, err := fsRT.RoundTrip(req); err != nil {
				b.Fatal(err)
			}
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { benchcpu.Loop(b, c.body) })
		b.Run(c.name+"-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					c.body()
				}
			})
		})
	}
}
