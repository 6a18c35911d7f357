package wasixbuild

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/sources"
)

// Problem is one finding of CheckRecipe: where, which rule, and the fix.
type Problem struct {
	File    string
	Line    int
	Rule    string
	Message string
}

// String is the problem as file:line: rule: message.
func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Rule, p.Message)
	}
	return fmt.Sprintf("%s: %s: %s", p.File, p.Rule, p.Message)
}

// Rules of CheckRecipe.
const (
	RuleFromDigest   = "from-digest"
	RuleDownloadPin  = "download-pin"
	RulePipeShell    = "pipe-to-shell"
	RuleLatest       = "latest"
	RulePinUnused    = "pin-unchecked"
	RuleScriptFetch  = "step-script-download"
	RuleProfile      = "profile"
	RuleWasmOptPhase = "wasm-opt-phases"
)

// logicalLine is a Dockerfile or shell line with its continuations joined.
type logicalLine struct {
	n    int
	text string
}

func logicalLines(data string) []logicalLine {
	var out []logicalLine
	var cur strings.Builder
	start := 0
	for i, raw := range strings.Split(data, "\n") {
		if cur.Len() == 0 {
			start = i + 1
		}
		t := strings.TrimRight(raw, " \t\r")
		if strings.HasPrefix(strings.TrimSpace(t), "#") {
			if cur.Len() == 0 {
				continue
			}
			continue // comment inside a continued instruction
		}
		if strings.HasSuffix(t, "\\") {
			cur.WriteString(strings.TrimSuffix(t, "\\"))
			cur.WriteByte(' ')
			continue
		}
		cur.WriteString(t)
		if s := strings.TrimSpace(cur.String()); s != "" {
			out = append(out, logicalLine{n: start, text: s})
		}
		cur.Reset()
	}
	return out
}

var (
	digestRE = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	hex64RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	argRefRE = regexp.MustCompile(`^\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?$`)
	latestRE = regexp.MustCompile(`(?i)(/latest(/|$)|[:@]latest\b|releases/latest)`)
	fetchRE  = regexp.MustCompile(`(^|[\s;&|(])(curl|wget)\s`)
)

type argDecl struct {
	line       int
	hasDefault bool
	value      string
}

// CheckRecipe checks the WASIX builder recipe in recipeDir against the
// toolchain pins tc: FROM pinned by digest (or a BASE_IMAGE build arg that
// sources.toml supplies), every download written to a file and checked
// with sha256sum against a pinned build arg or literal before use, nothing
// piped into a shell or fetched at "latest", every pinned download actually
// fetched and checked, no downloads in step scripts, configure without
// wasm-opt and the build with it, and profiles without Asyncify.
func CheckRecipe(recipeDir string, tc sources.Toolchain) []Problem {
	var probs []Problem
	df := filepath.Join(recipeDir, "Dockerfile")
	data, err := os.ReadFile(df)
	if err != nil {
		return []Problem{{File: df, Rule: RuleDownloadPin, Message: fmt.Sprintf("cannot read the builder recipe: %v", err)}}
	}
	probs = append(probs, checkDockerfile(df, string(data), tc)...)
	probs = append(probs, checkScripts(recipeDir)...)
	if _, err := LoadProfiles(recipeDir); err != nil {
		probs = append(probs, Problem{File: filepath.Join(recipeDir, ProfilesFile), Rule: RuleProfile, Message: err.Error()})
	}
	return probs
}

func checkDockerfile(file, data string, tc sources.Toolchain) []Problem {
	var probs []Problem
	add := func(line int, rule, format string, a ...any) {
		probs = append(probs, Problem{File: file, Line: line, Rule: rule, Message: fmt.Sprintf(format, a...)})
	}
	args := map[string]argDecl{}
	stages := map[string]bool{}
	used := map[string]bool{} // X of every checked ${X_URL}/${X_SHA256} pair
	for _, ll := range logicalLines(data) {
		instr, rest, _ := strings.Cut(ll.text, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "ARG":
			name, val, has := strings.Cut(rest, "=")
			val = strings.Trim(val, `"'`)
			args[name] = argDecl{line: ll.n, hasDefault: has, value: val}
			if has && latestRE.MatchString(val) {
				add(ll.n, RuleLatest, "ARG %s defaults to %q, which moves: pin a version in assets/sources.toml", name, val)
			}
			if has && strings.HasSuffix(name, "_SHA256") && !hex64RE.MatchString(val) {
				add(ll.n, RuleDownloadPin, "ARG %s defaults to %q, not a sha256: leave it without a default (sources.toml supplies it) or write the 64 hex digits", name, val)
			}
		case "FROM":
			f := strings.Fields(rest)
			var img string
			for i, w := range f {
				if strings.HasPrefix(w, "--") {
					continue
				}
				img = w
				if i+2 < len(f) && strings.EqualFold(f[i+1], "AS") {
					stages[f[i+2]] = true
				}
				break
			}
			switch m := argRefRE.FindStringSubmatch(img); {
			case img == "":
				add(ll.n, RuleFromDigest, "FROM names no image")
			case stages[img] && img != "":
				// an earlier build stage
			case m != nil:
				a, ok := args[m[1]]
				switch {
				case !ok:
					add(ll.n, RuleFromDigest, "FROM %s uses build arg %s, which is not declared before FROM: declare ARG %s without a default (pgxtask passes the digest-pinned base-image of sources.toml)", img, m[1], m[1])
				case a.hasDefault && !digestRE.MatchString(a.value):
					add(a.line, RuleFromDigest, "ARG %s defaults to %q, which is not pinned by digest: remove the default (sources.toml pins base-image) or write name@sha256:<64 hex>", m[1], a.value)
				}
			case !digestRE.MatchString(img):
				add(ll.n, RuleFromDigest, "FROM %s is not pinned by digest: use the BASE_IMAGE build arg (sources.toml base-image) or write name@sha256:<64 hex>", img)
			}
		case "ADD":
			if strings.Contains(rest, "http://") || strings.Contains(rest, "https://") {
				if !regexp.MustCompile(`--checksum=sha256:[0-9a-f]{64}\b`).MatchString(rest) {
					add(ll.n, RuleDownloadPin, "ADD downloads a URL without --checksum=sha256:<64 hex>: fetch with curl and check it against a pinned <NAME>_SHA256 build arg")
				}
				if latestRE.MatchString(rest) {
					add(ll.n, RuleLatest, "ADD fetches a moving \"latest\" URL: pin a version in assets/sources.toml")
				}
			}
		case "RUN":
			probs = append(probs, checkRun(file, ll, rest, args, used)...)
		}
	}
	// Every pin declared in sources.toml is fetched and checked here.
	var names []string
	for _, d := range tc.Downloads {
		names = append(names, d.Name)
	}
	for _, req := range RequiredDownloads {
		if _, ok := Download(tc, req); !ok {
			probs = append(probs, Problem{File: file, Rule: RulePinUnused, Message: fmt.Sprintf("[toolchain.wasix] in assets/sources.toml pins no download %q: add [[toolchain.wasix.downloads]] name = %q with version, url and sha256", req, req)})
		}
	}
	sort.Strings(names)
	for _, n := range names {
		if !used[ArgName(n)] {
			probs = append(probs, Problem{File: file, Rule: RulePinUnused, Message: fmt.Sprintf("download %q is pinned in assets/sources.toml but the Dockerfile never fetches ${%s_URL} and checks it against ${%s_SHA256}: a declared pin must be checked", n, ArgName(n), ArgName(n))})
		}
	}
	return probs
}

// command is one simple command of a RUN line and the shell operator that
// joins it to the command before it ("" for the first).
type command struct {
	op   string
	text string
}

var shellOpRE = regexp.MustCompile(`&&|\|\||;|\|`)

// commands splits a RUN body at &&, ||, ; and |. Quotes are not parsed: the
// recipe's download lines hold no operators inside quotes, and a line that
// does is refused rather than misread.
func commands(body string) []command {
	var out []command
	op := ""
	last := 0
	for _, loc := range shellOpRE.FindAllStringIndex(body, -1) {
		out = append(out, command{op: op, text: strings.TrimSpace(body[last:loc[0]])})
		op = body[loc[0]:loc[1]]
		last = loc[1]
	}
	return append(out, command{op: op, text: strings.TrimSpace(body[last:])})
}

// commandTool is the program a command runs, past VAR=value prefixes.
func commandTool(text string) string {
	for _, w := range strings.Fields(text) {
		if strings.Contains(w, "=") && !strings.HasPrefix(w, "-") {
			continue
		}
		return w
	}
	return ""
}

// partSuffix names a download before its check: the only file a download
// may write. The verified name exists only after sha256sum passed.
const partSuffix = ".part"

// checkRun checks the downloads of one RUN instruction. A download has one
// shape, recognised exactly (the verified-download pattern):
//
//	curl ... -o F.part "${X_URL}" && echo "${X_SHA256}  F.part" | sha256sum -c - && mv F.part F
//
// on an unbroken && chain from the start of the RUN, with F.part named
// nowhere else. So a file under its verified name F exists only after its
// sha256 matched: a failed check stops the chain before the mv, a `|| true`
// or `;` that would let the step go on is refused, and so is any use of the
// unverified F.part (extracting or running it before or instead of the
// check).
func checkRun(file string, ll logicalLine, body string, args map[string]argDecl, used map[string]bool) []Problem {
	var probs []Problem
	add := func(rule, format string, a ...any) {
		probs = append(probs, Problem{File: file, Line: ll.n, Rule: rule, Message: fmt.Sprintf(format, a...)})
	}
	cmds := commands(body)
	for ci, c := range cmds {
		tool := commandTool(c.text)
		if tool != "curl" && tool != "wget" {
			continue
		}
		if ci+1 < len(cmds) && cmds[ci+1].op == "|" {
			next := commandTool(cmds[ci+1].text)
			if next == "sh" || next == "bash" || strings.HasSuffix(next, "/sh") || strings.HasSuffix(next, "/bash") {
				add(RulePipeShell, "%s output is piped into %s: download to a file, check its sha256, then run it", tool, next)
				continue
			}
		}
		words := strings.Fields(c.text)
		var out, url string
		for i := 0; i < len(words); i++ {
			w := strings.Trim(words[i], `"'`)
			switch {
			case (tool == "curl" && (w == "-o" || w == "--output")) || (tool == "wget" && (w == "-O" || w == "--output-document")):
				if i+1 < len(words) {
					out = strings.Trim(words[i+1], `"'`)
					i++
				}
			case strings.HasPrefix(w, "--output="), strings.HasPrefix(w, "--output-document="):
				_, out, _ = strings.Cut(w, "=")
			case strings.HasPrefix(w, "http://") || strings.HasPrefix(w, "https://") || strings.HasPrefix(w, "$"):
				url = w
			}
		}
		if latestRE.MatchString(url) {
			add(RuleLatest, "%s fetches a moving \"latest\" URL %s: pin a version in assets/sources.toml", tool, url)
		}
		if out == "" || out == "-" {
			add(RuleDownloadPin, "%s %s does not write to a file: download to F%s, check it with sha256sum -c, then mv it to F", tool, url, partSuffix)
			continue
		}
		if url == "" {
			add(RuleDownloadPin, "%s: cannot find the URL it fetches: pass it as a ${<NAME>_URL} build arg", tool)
			continue
		}
		final, isPart := strings.CutSuffix(out, partSuffix)
		if !isPart {
			add(RuleDownloadPin, "%s writes %s under the name it is used by before its sha256 is checked: download to %s%s, check it, then mv it to %s", tool, out, out, partSuffix, out)
			continue
		}
		// The check and the rename: the next three commands, exactly.
		var ref string
		shape := ci+3 < len(cmds) && cmds[ci+1].op == "&&" && cmds[ci+2].op == "|" && cmds[ci+3].op == "&&"
		if shape {
			echo := strings.Fields(cmds[ci+1].text)
			sum := strings.Fields(cmds[ci+2].text)
			mv := strings.Fields(cmds[ci+3].text)
			shape = len(echo) == 3 && echo[0] == "echo" && strings.Trim(echo[2], `"'`) == out &&
				len(sum) == 3 && sum[0] == "sha256sum" && (sum[1] == "-c" || sum[1] == "--check") && sum[2] == "-" &&
				len(mv) == 3 && mv[0] == "mv" && strings.Trim(mv[1], `"'`) == out && strings.Trim(mv[2], `"'`) == final
			if shape {
				ref = strings.Trim(echo[1], `"'`)
			}
		}
		if !shape {
			add(RuleDownloadPin, "%s %s -> %s is not checked: follow it with && echo \"${<NAME>_SHA256}  %s\" | sha256sum -c - && mv %s %s, exactly", tool, url, out, out, out, final)
			continue
		}
		for _, before := range cmds[1 : ci+4] {
			if before.op != "&&" && before.op != "|" || before.op == "|" && !strings.HasPrefix(before.text, "sha256sum ") {
				add(RuleDownloadPin, "the download of %s is not on an unbroken && chain (%q before %q): a failed download or check must stop the step before %s exists", final, before.op, before.text, final)
				break
			}
		}
		if n := strings.Count(body, out); n != 3 {
			add(RuleDownloadPin, "%s is named %d times in this RUN: the unverified download may only be written, checked and renamed (3 times); use %s after the mv", out, n, final)
		}
		for _, before := range cmds[:ci+3] {
			if namesFile(before.text, final) {
				add(RuleDownloadPin, "%q uses %s before its check renamed it into place", before.text, final)
				break
			}
		}
		um := argRefRE.FindStringSubmatch(url)
		rm := argRefRE.FindStringSubmatch(ref)
		switch {
		case rm == nil && !hex64RE.MatchString(ref):
			add(RuleDownloadPin, "%s is checked against %q, neither a build arg nor a sha256", out, ref)
		case rm == nil && um != nil:
			add(RuleDownloadPin, "%s is checked against a literal sha256 but fetched from build arg %s: pin both in assets/sources.toml", out, url)
		case rm == nil:
			// literal URL with literal sha256: pinned in the file itself
		case um == nil:
			add(RuleDownloadPin, "%s fetches literal URL %s but checks build arg %s: pass the URL as a build arg from sources.toml too", tool, url, rm[1])
		case strings.TrimSuffix(um[1], "_URL") != strings.TrimSuffix(rm[1], "_SHA256") || !strings.HasSuffix(um[1], "_URL") || !strings.HasSuffix(rm[1], "_SHA256"):
			add(RuleDownloadPin, "%s fetches ${%s} but checks ${%s}: the URL and sha256 args must be one download's pair (<NAME>_URL, <NAME>_SHA256)", tool, um[1], rm[1])
		default:
			for _, a := range []string{um[1], rm[1]} {
				if _, ok := args[a]; !ok {
					add(RuleDownloadPin, "build arg %s is used but not declared: add ARG %s (pgxtask passes it from sources.toml)", a, a)
				}
			}
			used[strings.TrimSuffix(um[1], "_URL")] = true
		}
	}
	return probs
}

// namesFile reports whether text names path itself, not only path+".part".
func namesFile(text, path string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], path)
		if j < 0 {
			return false
		}
		end := i + j + len(path)
		if !strings.HasPrefix(text[end:], partSuffix) {
			return true
		}
		i = end
	}
}

// checkScripts forbids downloads in step scripts (they run offline, and a
// download there would escape the pins) and checks the wasm-opt phases of
// the runtime script.
func checkScripts(recipeDir string) []Problem {
	var probs []Problem
	files, _ := filepath.Glob(filepath.Join(recipeDir, "scripts", "*.sh"))
	sort.Strings(files)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			probs = append(probs, Problem{File: f, Rule: RuleScriptFetch, Message: err.Error()})
			continue
		}
		lines := logicalLines(string(data))
		for _, ll := range lines {
			if fetchRE.MatchString(ll.text) {
				probs = append(probs, Problem{File: f, Line: ll.n, Rule: RuleScriptFetch, Message: "a step script downloads: steps run from pinned inputs only; fetch in the Dockerfile against a sources.toml pin"})
			}
			if latestRE.MatchString(ll.text) && strings.Contains(ll.text, "://") {
				probs = append(probs, Problem{File: f, Line: ll.n, Rule: RuleLatest, Message: "a step script names a moving \"latest\" URL"})
			}
		}
		if filepath.Base(f) == "runtime.sh" {
			probs = append(probs, checkWasmOptPhases(f, lines)...)
		}
	}
	return probs
}

var (
	configureCallRE = regexp.MustCompile(`(^|\s)"?[^\s"]*/configure"?(\s|$)`)
	makeCallRE      = regexp.MustCompile(`(^|\s)make(\s|$)`)
)

// checkWasmOptPhases: configure runs with WASIXCC_RUN_WASM_OPT=no (wasm-opt
// breaks its link tests) and make with =yes (skipping it gives broken
// modules), each set on the command's own line.
func checkWasmOptPhases(file string, lines []logicalLine) []Problem {
	var probs []Problem
	sawConfigure := false
	for _, ll := range lines {
		switch {
		case configureCallRE.MatchString(ll.text):
			sawConfigure = true
			if !strings.Contains(ll.text, "WASIXCC_RUN_WASM_OPT=no") {
				probs = append(probs, Problem{File: file, Line: ll.n, Rule: RuleWasmOptPhase, Message: "configure runs without WASIXCC_RUN_WASM_OPT=no: wasm-opt breaks configure's link tests; prefix the command with it"})
			}
		case makeCallRE.MatchString(ll.text) && !strings.HasPrefix(ll.text, "step "):
			if !strings.Contains(ll.text, "WASIXCC_RUN_WASM_OPT=yes") {
				probs = append(probs, Problem{File: file, Line: ll.n, Rule: RuleWasmOptPhase, Message: "make runs without WASIXCC_RUN_WASM_OPT=yes: modules built without wasm-opt are broken; prefix the command with it"})
			}
		}
	}
	if !sawConfigure {
		probs = append(probs, Problem{File: file, Rule: RuleWasmOptPhase, Message: "runtime.sh never runs configure"})
	}
	return probs
}
