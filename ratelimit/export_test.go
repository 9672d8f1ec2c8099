package ratelimit

// GCRAScript exposes the GCRA script to benchmarks, to time a bare EVALSHA
// of it beside a full decision.
const GCRAScript = gcraScript
