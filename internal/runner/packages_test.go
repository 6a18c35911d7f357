package runner

import (
	"strings"
	"testing"
)

func TestParseDpkgStatus(t *testing.T) {
	status := `Package: zlib1g
Status: install ok installed
Architecture: amd64
Version: 1:1.2.13.dfsg-1
Description: compression library
 a continuation line: Version: 9
Conffiles:
 /etc/x 0123

Package: gcc-12
Status: install ok installed
Architecture: amd64
Version: 12.2.0-14+deb12u1

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: libc6
Status: install ok installed
Architecture: arm64
Version: 2.36-9+deb12u10
`
	got, err := ParseDpkgStatus(strings.NewReader(status))
	if err != nil {
		t.Fatal(err)
	}
	want := "gcc-12:amd64=12.2.0-14+deb12u1 libc6:arm64=2.36-9+deb12u10 zlib1g:amd64=1:1.2.13.dfsg-1"
	if strings.Join(got, " ") != want {
		t.Fatalf("packages = %q\nwant %q", strings.Join(got, " "), want)
	}
	// One version changed is another digest; the same list is the same.
	other, _ := ParseDpkgStatus(strings.NewReader(strings.Replace(status, "12.2.0-14+deb12u1", "12.2.0-14+deb12u2", 1)))
	if PackagesDigest(got) == PackagesDigest(other) {
		t.Fatal("a package at another version gives the same digest")
	}
	again, _ := ParseDpkgStatus(strings.NewReader(status))
	if PackagesDigest(got) != PackagesDigest(again) {
		t.Fatal("the same list gives another digest")
	}
	if _, err := ParseDpkgStatus(strings.NewReader("garbage\n")); err == nil {
		t.Fatal("a status file with no installed package was accepted")
	}
}
