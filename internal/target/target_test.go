package target

import (
	"slices"
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	n := sortedNames()
	if len(slices.Compact(append([]string(nil), n...))) != len(n) {
		t.Fatalf("duplicate target names: %v", n)
	}
	for _, tg := range All() {
		if tg.Kind != Native && tg.Kind != WASIX {
			t.Errorf("%s: kind %q", tg.Name, tg.Kind)
		}
		if tg.Builds && (tg.Recipe == "" || tg.Platform == "") {
			t.Errorf("%s: built, but without a recipe or a container platform", tg.Name)
		}
		if tg.Kind == Native && (tg.GOOS == "" || tg.GOARCH == "") {
			t.Errorf("%s: a native target needs GOOS and GOARCH", tg.Name)
		}
		if tg.CIRunner == "" {
			t.Errorf("%s: no CI runner", tg.Name)
		}
	}
	if got := Buildable(); !slices.Equal(got, []string{"linux-amd64", "linux-arm64", "wasix"}) {
		t.Errorf("Buildable = %v", got)
	}
	if w, _ := Lookup("wasix"); !w.IsWASIX() {
		t.Error("wasix is not of the WASIX kind")
	}
	if tg, ok := ForPlatform("linux", "arm64"); !ok || tg.Name != "linux-arm64" {
		t.Errorf("ForPlatform(linux, arm64) = %v, %v", tg, ok)
	}
	if got := Select(func(t Target) bool { return t.GOOS == "linux" }); !slices.Equal(got, []string{"linux-amd64", "linux-arm64"}) {
		t.Errorf("Linux targets = %v", got)
	}
	if got := Containers(); !slices.Equal(got, []string{"linux-amd64", "linux-arm64", "wasix"}) {
		t.Errorf("Containers = %v", got)
	}
	if _, err := Get("solaris"); err == nil {
		t.Error("Get(solaris) succeeded")
	}
}

func TestLoadRefusesBadTables(t *testing.T) {
	for name, tc := range map[string]struct{ data, want string }{
		"unknown key":    {"format-version = 1\n[[targets]]\nname = \"x\"\nkind = \"wasix\"\narch = \"y\"\n", `unknown key "targets.arch"`},
		"format":         {"format-version = 2\n", "format-version = 2"},
		"no name":        {"format-version = 1\n[[targets]]\nkind = \"wasix\"\n", "no name"},
		"twice":          {"format-version = 1\n[[targets]]\nname = \"x\"\nkind = \"wasix\"\n[[targets]]\nname = \"x\"\nkind = \"wasix\"\n", "listed twice"},
		"kind":           {"format-version = 1\n[[targets]]\nname = \"x\"\nkind = \"rust\"\n", `kind = "rust"`},
		"native no arch": {"format-version = 1\n[[targets]]\nname = \"x\"\nkind = \"native\"\ngoos = \"linux\"\n", "needs goos and goarch"},
		"builds":         {"format-version = 1\n[[targets]]\nname = \"x\"\nkind = \"wasix\"\nbuilds = true\n", "needs a recipe and a platform"},
	} {
		_, err := load([]byte(tc.data))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.want)
		}
	}
	if _, err := load(targetsTOML); err != nil {
		t.Fatalf("the embedded table: %v", err)
	}
}
