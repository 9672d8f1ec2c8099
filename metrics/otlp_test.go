package metrics

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	collmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/grpc"
)

// grpcCollector is a real OTLP/gRPC metrics endpoint on 127.0.0.1 that
// counts the data points it receives.
type grpcCollector struct {
	collmetrics.UnimplementedMetricsServiceServer
	points atomic.Int64
}

func (c *grpcCollector) Export(_ context.Context, req *collmetrics.ExportMetricsServiceRequest) (*collmetrics.ExportMetricsServiceResponse, error) {
	for _, rm := range req.GetResourceMetrics() {
		for _, sm := range rm.GetScopeMetrics() {
			for _, m := range sm.GetMetrics() {
				c.points.Add(int64(len(m.GetSum().GetDataPoints())))
			}
		}
	}
	return &collmetrics.ExportMetricsServiceResponse{}, nil
}

func TestSetupOTLPGRPC(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	col := &grpcCollector{}
	collmetrics.RegisterMetricsServiceServer(srv, col)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })

	ctx := context.Background()
	// A long interval: only ForceFlush exports, however slow the machine.
	p := setupTest(t, Options{NoPrometheus: true, ExportInterval: time.Hour, OTLP: OTLPOptions{
		Enabled: true, Protocol: "grpc", EndpointURL: "http://" + lis.Addr().String()}})
	c, _ := p.Meter("test").Int64Counter("grpc.counter")
	c.Add(ctx, 1)
	require.NoError(t, p.ForceFlush(ctx))
	assert.Equal(t, int64(1), col.points.Load(), "the counter's data point reached the gRPC collector")
	require.NoError(t, p.Shutdown(ctx))
}

func TestSetupRejectsUnknownOTLPProtocol(t *testing.T) {
	t.Parallel()
	_, err := Setup(context.Background(), Options{OTLP: OTLPOptions{Enabled: true, Protocol: "carrier-pigeon"}})
	assert.ErrorIs(t, err, ErrInvalidConfig)
}
