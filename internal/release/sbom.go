package release

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// SPDX document types (SPDX 2.3 JSON), only the fields pgxtask fills.
type spdxDoc struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreation       `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreation struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	Name             string         `json:"name"`
	SPDXID           string         `json:"SPDXID"`
	VersionInfo      string         `json:"versionInfo,omitempty"`
	DownloadLocation string         `json:"downloadLocation"`
	FilesAnalyzed    bool           `json:"filesAnalyzed"`
	PackageFileName  string         `json:"packageFileName,omitempty"`
	Checksums        []spdxChecksum `json:"checksums,omitempty"`
	PrimaryPurpose   string         `json:"primaryPurpose,omitempty"`
	Comment          string         `json:"comment,omitempty"`
}

type spdxChecksum struct {
	Algorithm     string `json:"algorithm"`
	ChecksumValue string `json:"checksumValue"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}

var spdxIDUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

func spdxID(kind, name string) string {
	return "SPDXRef-" + kind + "-" + strings.Trim(spdxIDUnsafe.ReplaceAllString(name, "-"), "-")
}

// SPDX returns the SBOM of one staged module: the module (with its zip's
// sha256), every archive it embeds (with their sha256 from the verified
// manifest), and the pinned sources the dist was built from. Download
// locations pgxtask cannot state are NOASSERTION.
func SPDX(man *dist.Manifest, m Module, created time.Time) ([]byte, error) {
	modID := spdxID("Module", m.Target)
	doc := spdxDoc{
		SPDXVersion:       "SPDX-2.3",
		DataLicense:       "CC0-1.0",
		SPDXID:            "SPDXRef-DOCUMENT",
		Name:              m.Path + "@" + m.Version,
		DocumentNamespace: fmt.Sprintf("https://github.com/pglite-oxide/pgxtask/spdx/%s-%s-%s", m.Target, m.Version, m.ZipSHA256[:16]),
		CreationInfo:      spdxCreation{Created: created.UTC().Format(time.RFC3339), Creators: []string{"Tool: pgxtask"}},
	}
	doc.Packages = append(doc.Packages, spdxPackage{
		Name: m.Path, SPDXID: modID, VersionInfo: m.Version, DownloadLocation: "NOASSERTION",
		PackageFileName: m.Zip, PrimaryPurpose: "LIBRARY",
		Checksums: []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: m.ZipSHA256}},
		Comment:   "Go module zip as golang.org/x/mod/zip creates it; go.sum hash " + m.H1,
	})
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", modID})
	for _, a := range man.Artifacts() {
		id := spdxID("Archive", a.Archive)
		doc.Packages = append(doc.Packages, spdxPackage{
			Name: a.Archive, SPDXID: id, DownloadLocation: "NOASSERTION", PackageFileName: "dist/" + a.Archive,
			PrimaryPurpose: "ARCHIVE", Checksums: []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: a.SHA256}},
		})
		doc.Relationships = append(doc.Relationships, spdxRelationship{modID, "CONTAINS", id})
	}
	for _, s := range man.Sources {
		id := spdxID("Source", s.Name)
		p := spdxPackage{Name: s.Name, SPDXID: id, VersionInfo: s.Version, DownloadLocation: "NOASSERTION", PrimaryPurpose: "SOURCE"}
		if s.Version == "" {
			p.VersionInfo = s.Pin
		}
		switch {
		case s.Kind == "archive" && len(s.Pin) == 64:
			p.Checksums = []spdxChecksum{{Algorithm: "SHA256", ChecksumValue: s.Pin}}
		case s.Kind == "git":
			p.Comment = "git commit " + s.Pin
		}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{modID, "GENERATED_FROM", id})
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
