// Package bench holds perfkit's side-by-side benchmarks against peer
// libraries. It is a separate module so the peers never enter perfkit's own
// go.mod. Run: cd bench && go test -run '^$' -bench . -benchmem -count 6 ./...
package bench
