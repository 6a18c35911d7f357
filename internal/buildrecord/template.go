package buildrecord

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// TemplateFile is the template manifest's name in the pgdata-template unit.
const TemplateFile = "template.json"

// TemplateFormatVersion is the template.json format.
const TemplateFormatVersion = 1

// Template is pgdata-template/template.json: how the PGDATA template was
// initialised. Packaging copies it into the dist manifest; the loader relies
// on the init profile.
type Template struct {
	FormatVersion   int               `json:"format-version"`
	CatalogVersion  string            `json:"catalog-version"`
	PostgresVersion string            `json:"postgres-version"`
	InitProfile     map[string]string `json:"init-profile"`
	SourcePinsHash  string            `json:"source-pins-sha256"`
}

// WriteTemplate writes t as dir/template.json.
func WriteTemplate(dir string, t Template) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, TemplateFile), append(data, '\n'), 0o644)
}

// LoadTemplate reads dir/template.json and checks the fields packaging
// needs.
func LoadTemplate(dir string) (*Template, error) {
	p := filepath.Join(dir, TemplateFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read the PGDATA template manifest: %w (rebuild the pgdata-template stage)", err)
	}
	var t Template
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("parse %s: %w", p, err)
	}
	if t.CatalogVersion == "" || t.PostgresVersion == "" {
		return nil, fmt.Errorf("%s: catalog-version or postgres-version is empty (rebuild the pgdata-template stage)", p)
	}
	return &t, nil
}
