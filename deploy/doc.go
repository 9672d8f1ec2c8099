// Package deploy holds no Go API: it is the home of the files an operator
// deploys beside a perfkit service, and of the tests that check them in
// the test command.
//
//   - prometheus/rules/servio.rules.yml: recording and alerting rules for
//     the thresholds of Servio's performance targets (p99, error rate,
//     slow queries, pool saturation, cache hit rate, breaker open, rate
//     limiting failing open, failing health checks); unit tests in
//     servio.rules.test.yml.
//   - prometheus/prometheus.yml: the configuration of docker-compose.yml's
//     observe profile (scrapes servio on the Docker host).
//   - grafana/dashboards: four dashboards (API performance, Database,
//     Cache, External APIs) for Grafana 10 and later, importable as they
//     are; grafana/provisioning loads them in the observe profile.
//
// The tests run `promtool check rules`, `promtool test rules` and
// `promtool check config` (promtool from Debian's prometheus package;
// scripts/test installs it when missing), require a firing unit test for
// every alert, and check the dashboards' structure. The same rules and
// every dashboard query also run against a real Prometheus scraping servio
// under injected faults in examples/servio (prometheus_e2e_test.go).
package deploy
