// Package catalog discovers PostgreSQL extensions and loadable modules in
// the fetched source trees (PostgreSQL's contrib/ and external PGXS trees),
// joins them with the build intent (assets/extensions.promoted.toml) and
// smoke evidence (assets/extensions.smoke.toml), and generates the committed
// catalog and build plans in assets/generated/.
//
// Facts come from the trees themselves: control files are parsed with the
// syntax PostgreSQL's configuration parser accepts, and Makefiles are
// evaluated by GNU make itself, with the target's configure facts in a stub
// PGXS (make.go), so whatever make accepts is read as the build reads it and
// a new PGXS tree needs no code change.
package catalog
