//go:build external_libzstd

package tarzst

// A system libzstd may be another version than the bundled 1.5.7 and give
// other bytes for the same archive: pgxtask's artifacts would stop being
// reproducible across machines. Build without -tags external_libzstd.
var _ = pgxtaskRefusesExternalLibzstd
