package catalog

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pglite-oxide/pgxtask/internal/e2e"
)

// TestE2EDiscoverRealTrees fetches the pinned native sources through the
// real CLI and discovers PostgreSQL 15.18's contrib, pgvector 0.8.0 and
// pgtap 1.3.3; the committed generated files must match what they give.
func TestE2EDiscoverRealTrees(t *testing.T) {
	e2e.Require(t)
	e2e.MustRun(t, "sources", "fetch", "--target", "linux-amd64")
	l := e2e.Layout(t)
	in, err := LoadInputs(l)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Problems) > 0 {
		t.Errorf("intent problems on the real trees:\n%s", strings.Join(res.Problems, "\n"))
	}
	tc, ok := res.Catalog.Target("linux-amd64")
	if !ok {
		t.Fatal("no linux-amd64 catalog")
	}
	pg, _ := in.Manifest.PostgresFor("linux-amd64")
	controls, err := filepath.Glob(filepath.Join(l.Checkout(pg.Name), "contrib", "*", "*.control"))
	if err != nil || len(controls) == 0 {
		t.Fatalf("no control files in the fetched %s contrib: %v", pg.Name, err)
	}
	contribExt := 0
	for _, u := range tc.Units {
		if u.SourceKind == SourcePostgresContrib && u.Kind == KindExtension {
			contribExt++
		}
	}
	if contribExt != len(controls) {
		t.Errorf("discovered %d contrib SQL extensions, the tree has %d control files", contribExt, len(controls))
	}
	unit := func(id string) *Unit {
		t.Helper()
		u, ok := tc.Unit(id)
		if !ok {
			t.Fatalf("%s not discovered", id)
		}
		return u
	}
	if u := unit("intarray"); u.NativeModuleFile != "_int.so" {
		t.Errorf("intarray module file = %q, want _int.so", u.NativeModuleFile)
	}
	if u := unit("earthdistance"); !reflect.DeepEqual(u.Dependencies, []string{"cube"}) {
		t.Errorf("earthdistance dependencies = %v, want [cube]", u.Dependencies)
	}
	if u := unit("pgtap"); u.NativeModule != "" || u.Source != "pgtap-release" || u.buildKind() != BuildSQLOnly {
		t.Errorf("pgtap = module %q source %s kind %s, want SQL-only from pgtap-release", u.NativeModule, u.Source, u.buildKind())
	}
	if u := unit("vector"); u.NativeModule != "vector" || u.NativeModuleFile != "vector.so" || u.SourceKind != SourcePGXSExternal {
		t.Errorf("vector = module %q (%s), kind %s", u.NativeModule, u.NativeModuleFile, u.SourceKind)
	}
	if u := unit("pgcrypto"); !has(u.NativeDeps, "openssl") {
		t.Errorf("pgcrypto native deps = %v, want openssl", u.NativeDeps)
	}
	if u := unit("uuid-ossp"); !has(u.NativeDeps, "libuuid") {
		t.Errorf("uuid-ossp native deps = %v, want libuuid", u.NativeDeps)
	}
	if u := unit("xml2"); u.NativeModuleFile != "pgxml.so" || !has(u.NativeDeps, "libxml2") || !has(u.NativeDeps, "libxslt") {
		t.Errorf("xml2 = %s %v, want pgxml.so linking libxml2 and libxslt", u.NativeModuleFile, u.NativeDeps)
	}
	if u := unit("pg_stat_statements"); !has(u.Lifecycle, LifecyclePreloadRequired) {
		t.Errorf("pg_stat_statements lifecycle = %v, want preload-required", u.Lifecycle)
	}
	if u := unit("auto_explain"); u.Kind != KindModule || u.SQLName != "" {
		t.Errorf("auto_explain = %s %q, want a module without SQL name", u.Kind, u.SQLName)
	}
	for _, id := range []string{"hstore_plperl", "jsonb_plpython3u", "sepgsql"} {
		if u := unit(id); u.Promotion.Requested || u.Promotion.Blocker == "" {
			t.Errorf("%s must be blocked with a reason on linux-amd64: %+v", id, u.Promotion)
		}
	}
	for _, p := range res.Plan.GeneratedFrom.Sources {
		if strings.Contains(p.Pin, "/") {
			t.Errorf("generated-from records a path, not a pin: %+v", p)
		}
	}

	// The committed generated files are what these trees give.
	e2e.MustRun(t, "extensions", "discover", "--check")
	e2e.MustRun(t, "extensions", "build-plan", "--check")
	e2e.MustRun(t, "extensions", "check")
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
