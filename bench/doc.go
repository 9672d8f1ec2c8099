// Package bench holds perfkit's side-by-side benchmarks against peer
// libraries. It is a separate module so the peers never enter perfkit's own
// go.mod. Run: cd bench && go test -run '^$' -bench . -benchmem -count 6 ./...
//
// bench/overload is a program, not a benchmark: a stand-in for servio
// whose admission is off, perfkit's AdaptiveLimiter or failsafe-go's
// adaptivelimiter, driven by scripts/bench-overload. bench/netpollorder
// shows in which order a busy one-P Go server starts the requests that
// arrived meanwhile (the reason resilience.QueueDelay's minimum reads a
// standing queue low).
package bench
