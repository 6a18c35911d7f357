// Package perf measures pgxtask's own native build and compares it, in the
// same run, with PGlite in Node and with the machine's PostgreSQL.
//
// Three commands sit on top of it: cold (first-query latency from an
// explicit cache and root state, with the loader's phases), warm (repeated
// queries on open servers) and bench (a speed suite modelled on SQLite's
// speedtest as PGlite's benchmark runs it, generated from a seed, and a
// CRUD round-trip suite). Every system under test implements System; the
// runners interleave systems test by test so that ratios hold on a noisy
// machine. Reports are JSON, markdown and a chart; Gate compares pgxtask's
// ratios with a committed baseline.
package perf
