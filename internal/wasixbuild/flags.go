package wasixbuild

import (
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// ConfigureFlags are the configure flags of the WASIX runtime: the host
// triple, prefix / (so pkglibdir is /lib/postgresql and sharedir
// /share/postgresql, PostgreSQL's canonical layout the loader mounts as the
// guest root), and none of the native libraries the WASIX sysroot lacks.
var ConfigureFlags = []string{
	"--host=wasm32-wasix",
	"--prefix=/",
	"--without-readline",
	"--without-icu",
	"--without-zlib",
	"--without-llvm",
	"--without-pam",
	"--without-openssl",
}

// Layout is the install layout ConfigureFlags give (install paths, prefix /).
var Layout = map[string]string{
	"prefix":    "/",
	"bindir":    "/bin",
	"pkglibdir": "/lib/postgresql",
	"sharedir":  "/share/postgresql",
}

// MainModuleFlags are the compile and link flags of the main module
// (postgres, built by wasixcc as dynamic-main).
var MainModuleFlags = []string{"-fwasm-exceptions"}

// SideModuleFlags are the compile and link flags of every side module
// (runtime support modules and extensions).
var SideModuleFlags = []string{"-fwasm-exceptions", "-fPIC", "-Wl,-shared"}

// StepEnv is the environment the WASIX step scripts read for a profile, as
// sorted KEY=VALUE strings.
func StepEnv(p Profile) []string {
	env := []string{
		"PGX_CFLAGS=" + strings.Join(p.CFlags, " "),
		"PGX_LDFLAGS=" + strings.Join(p.LDFlags, " "),
		"PGX_WASM_OPT=" + strings.Join(p.WasmOpt, " "),
		"PGX_MAIN_FLAGS=" + strings.Join(MainModuleFlags, " "),
		"PGX_SIDE_FLAGS=" + strings.Join(SideModuleFlags, " "),
		"PGX_CONFIGURE=" + strings.Join(ConfigureFlags, " "),
	}
	sort.Strings(env)
	return env
}

// ArgName is the build-arg prefix of a download: its name upper-cased with
// - as _ (sysroot-eh -> SYSROOT_EH).
func ArgName(download string) string {
	return strings.ToUpper(strings.ReplaceAll(download, "-", "_"))
}

// BuildArgs are the builder Dockerfile's build args generated from the
// toolchain pins: COMPILER_VERSION and, per download, <NAME>_VERSION,
// <NAME>_URL and <NAME>_SHA256. BASE_IMAGE is the runner's (the pinned base
// or a local override).
func BuildArgs(tc sources.Toolchain) map[string]string {
	args := map[string]string{"COMPILER_VERSION": tc.CompilerVersion}
	for _, d := range tc.Downloads {
		n := ArgName(d.Name)
		args[n+"_VERSION"] = d.Version
		args[n+"_URL"] = d.URL
		args[n+"_SHA256"] = d.SHA256
	}
	return args
}

// Download returns the named download of tc.
func Download(tc sources.Toolchain, name string) (sources.Download, bool) {
	for _, d := range tc.Downloads {
		if d.Name == name {
			return d, true
		}
	}
	return sources.Download{}, false
}

// RequiredDownloads are the downloads [toolchain.wasix] must pin.
var RequiredDownloads = []string{"wasixcc", "sysroot", "sysroot-eh", "sysroot-ehpic", "llvm", "binaryen", "wasmer"}
