package packaging

import (
	"encoding/json"
	"sort"

	"github.com/pglite-oxide/pgxtask/internal/buildrecord"
	"github.com/pglite-oxide/pgxtask/internal/dist"
)

// Provenance statement constants (in-toto Statement v1 carrying a SLSA
// provenance v1 predicate).
const (
	inTotoStatementType = "https://in-toto.io/Statement/v1"
	slsaPredicateType   = "https://slsa.dev/provenance/v1"
	pgxtaskBuildType    = "https://github.com/pglite-oxide/pgxtask/buildtypes/assets@v1"
	pgxtaskBuilderID    = "https://github.com/pglite-oxide/pgxtask"
)

// Statement is provenance.json: an in-toto statement whose subjects are the
// dist's artifacts and manifest, with a SLSA provenance predicate. It holds
// no timestamps or host names, so it is as reproducible as the artifacts.
type Statement struct {
	Type          string    `json:"_type"`
	Subject       []Subject `json:"subject"`
	PredicateType string    `json:"predicateType"`
	Predicate     Predicate `json:"predicate"`
}

// Subject is one file the statement is about.
type Subject struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// Predicate is the SLSA provenance v1 predicate.
type Predicate struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built, how, and from what.
type BuildDefinition struct {
	BuildType            string               `json:"buildType"`
	ExternalParameters   ExternalParameters   `json:"externalParameters"`
	InternalParameters   InternalParameters   `json:"internalParameters"`
	ResolvedDependencies []ResourceDescriptor `json:"resolvedDependencies"`
}

// ExternalParameters are the inputs a user chose.
type ExternalParameters struct {
	Target   string     `json:"target"`
	Profile  string     `json:"profile"`
	Commands [][]string `json:"commands"`
}

// InternalParameters are inputs the build fixed itself.
type InternalParameters struct {
	Toolchain        dist.Toolchain            `json:"toolchain"`
	PostgresVersion  string                    `json:"postgresVersion"`
	CatalogVersion   string                    `json:"catalogVersion"`
	SourcePinsSHA256 string                    `json:"sourcePinsSha256"`
	Stages           []buildrecord.StageRecord `json:"stages"`
	// BuilderPackages are the Debian packages of the builder image with
	// their exact versions ("name:arch=version"): they cannot be pinned,
	// so they are recorded (and their digest is part of every stage key).
	BuilderPackages []string `json:"builderPackages,omitempty"`
	// BundledPackages are, per extension, the Debian packages (exact
	// versions) of the shared libraries its archive carries.
	BundledPackages map[string][]string `json:"bundledPackages,omitempty"`
}

// ResourceDescriptor is one pinned source.
type ResourceDescriptor struct {
	Name        string            `json:"name"`
	Digest      map[string]string `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// RunDetails names the builder.
type RunDetails struct {
	Builder struct {
		ID string `json:"id"`
	} `json:"builder"`
}

func provenance(m *dist.Manifest, rec *buildrecord.Record, sums map[string]string) ([]byte, error) {
	st := Statement{Type: inTotoStatementType, PredicateType: slsaPredicateType}
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		st.Subject = append(st.Subject, Subject{Name: n, Digest: map[string]string{"sha256": sums[n]}})
	}
	profile := rec.Profile
	buildCmd := []string{"pgxtask", "assets", "build", "--target", m.Target}
	if profile != "" {
		buildCmd = append(buildCmd, "--profile", profile)
	}
	buildCmd = append(buildCmd, "--execute")
	st.Predicate.BuildDefinition = BuildDefinition{
		BuildType: pgxtaskBuildType,
		ExternalParameters: ExternalParameters{
			Target:   m.Target,
			Profile:  profile,
			Commands: [][]string{buildCmd, {"pgxtask", "assets", "package", "--target", m.Target}},
		},
		InternalParameters: InternalParameters{
			Toolchain: m.Toolchain, PostgresVersion: m.PostgresVersion, CatalogVersion: m.CatalogVersion,
			SourcePinsSHA256: m.SourcePinsSHA256, Stages: append([]buildrecord.StageRecord{}, rec.Stages...),
			BuilderPackages: rec.Toolchain.Packages,
			BundledPackages: bundledPackages(m),
		},
		ResolvedDependencies: []ResourceDescriptor{},
	}
	for _, s := range m.Sources {
		d := ResourceDescriptor{Name: s.Name, Digest: map[string]string{}, Annotations: map[string]string{"kind": s.Kind}}
		if s.Version != "" {
			d.Annotations["version"] = s.Version
		}
		if s.Kind == "git" {
			d.Digest["gitCommit"] = s.Pin
		} else {
			d.Digest["sha256"] = s.Pin
		}
		st.Predicate.BuildDefinition.ResolvedDependencies = append(st.Predicate.BuildDefinition.ResolvedDependencies, d)
	}
	st.Predicate.RunDetails.Builder.ID = pgxtaskBuilderID
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

func bundledPackages(m *dist.Manifest) map[string][]string {
	var out map[string][]string
	for _, e := range m.Extensions {
		for _, l := range e.BundledLibraries {
			if out == nil {
				out = map[string][]string{}
			}
			out[e.ID] = append(out[e.ID], l.Package)
		}
	}
	return out
}
