package release

import (
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"runtime/debug"
	"time"
)

// SBOM describes a Go binary's modules, as its build info records them,
// as an SPDX 2.3 document in JSON: the main module, the Go standard
// library it was built with, and every dependency, each with its purl.
func SBOM(binary, version, revision, platform string, created time.Time) ([]byte, error) {
	info, err := buildinfo.ReadFile(binary)
	if err != nil {
		return nil, fmt.Errorf("read the build info of %s: %w", binary, err)
	}
	doc := spdxDocument{
		SPDXVersion: "SPDX-2.3", DataLicense: "CC0-1.0", SPDXID: "SPDXRef-DOCUMENT",
		Name:              fmt.Sprintf("exokey-%s-%s", version, platform),
		DocumentNamespace: fmt.Sprintf("%s/spdx/%s/%s/%s", Source, version, revision, platform),
		CreationInfo:      spdxCreationInfo{Created: created.UTC().Format(time.RFC3339), Creators: []string{"Tool: exokey-release"}},
	}
	main := spdxPackage{SPDXID: "SPDXRef-Package-main", Name: info.Main.Path, VersionInfo: version, DownloadLocation: Source,
		LicenseConcluded: Licenses, ExternalRefs: []spdxRef{purl(info.Main.Path, version)}}
	doc.Packages = append(doc.Packages, main)
	doc.Relationships = append(doc.Relationships, spdxRelationship{"SPDXRef-DOCUMENT", "DESCRIBES", main.SPDXID})
	stdlib := spdxPackage{SPDXID: "SPDXRef-Package-stdlib", Name: "stdlib", VersionInfo: info.GoVersion, DownloadLocation: "https://go.dev/dl/",
		LicenseConcluded: "NOASSERTION", ExternalRefs: []spdxRef{purl("stdlib", info.GoVersion)}}
	doc.Packages = append(doc.Packages, stdlib)
	doc.Relationships = append(doc.Relationships, spdxRelationship{main.SPDXID, "DEPENDS_ON", stdlib.SPDXID})
	for i, dep := range info.Deps {
		module := effective(dep)
		p := spdxPackage{SPDXID: fmt.Sprintf("SPDXRef-Package-%d", i), Name: module.Path, VersionInfo: module.Version,
			DownloadLocation: "https://proxy.golang.org/" + module.Path + "/@v/" + module.Version + ".zip",
			LicenseConcluded: "NOASSERTION", ExternalRefs: []spdxRef{purl(module.Path, module.Version)}}
		doc.Packages = append(doc.Packages, p)
		doc.Relationships = append(doc.Relationships, spdxRelationship{main.SPDXID, "DEPENDS_ON", p.SPDXID})
	}
	return json.MarshalIndent(doc, "", "  ")
}

// effective is the module a dependency was built from: its replacement,
// if it has one.
func effective(m *debug.Module) *debug.Module {
	if m.Replace != nil {
		return m.Replace
	}
	return m
}

func purl(path, version string) spdxRef {
	return spdxRef{Category: "PACKAGE-MANAGER", Type: "purl", Locator: "pkg:golang/" + path + "@" + version}
}

type spdxDocument struct {
	SPDXVersion       string             `json:"spdxVersion"`
	DataLicense       string             `json:"dataLicense"`
	SPDXID            string             `json:"SPDXID"`
	Name              string             `json:"name"`
	DocumentNamespace string             `json:"documentNamespace"`
	CreationInfo      spdxCreationInfo   `json:"creationInfo"`
	Packages          []spdxPackage      `json:"packages"`
	Relationships     []spdxRelationship `json:"relationships"`
}

type spdxCreationInfo struct {
	Created  string   `json:"created"`
	Creators []string `json:"creators"`
}

type spdxPackage struct {
	SPDXID           string    `json:"SPDXID"`
	Name             string    `json:"name"`
	VersionInfo      string    `json:"versionInfo"`
	DownloadLocation string    `json:"downloadLocation"`
	FilesAnalyzed    bool      `json:"filesAnalyzed"`
	LicenseConcluded string    `json:"licenseConcluded"`
	ExternalRefs     []spdxRef `json:"externalRefs"`
}

type spdxRef struct {
	Category string `json:"referenceCategory"`
	Type     string `json:"referenceType"`
	Locator  string `json:"referenceLocator"`
}

type spdxRelationship struct {
	Element string `json:"spdxElementId"`
	Type    string `json:"relationshipType"`
	Related string `json:"relatedSpdxElement"`
}
