package perf

import (
	"strings"
	"testing"
)

func TestParseCompare(t *testing.T) {
	got, err := ParseCompare([]string{"pglite, native", "", "native"})
	if err != nil || len(got) != 2 || !got[SystemPGlite] || !got[SystemNative] {
		t.Fatalf("ParseCompare = %v, %v", got, err)
	}
	if _, err := ParseCompare([]string{"pglite,mysql"}); err == nil || !strings.Contains(err.Error(), `"mysql"`) {
		t.Fatalf("unknown system: %v", err)
	}
	if l := ParseList([]string{"vector, ,hstore", ""}); strings.Join(l, ",") != "vector,hstore" {
		t.Fatalf("ParseList = %q", l)
	}
	if CheckChartName("a.PNG") != nil || CheckChartName("x.gif") == nil {
		t.Fatal("CheckChartName accepts .svg and .png only")
	}
	if ExtensionQuery([]string{"hstore"}) != "" || ExtensionQuery([]string{"hstore", "vector"}) == "" {
		t.Fatal("ExtensionQuery has a query for vector only")
	}
}
