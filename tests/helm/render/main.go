// Command render is a small stand-in for `helm template`, built only from
// Debian's Go packages (text/template, sprig, sigs.k8s.io/yaml, gojsonschema),
// so the chart in helm/strata can be rendered and tested without a helm
// binary or a cluster.
//
// It follows Helm 3's engine where the chart relies on it:
//   - values: the chart's values.yaml, coalesced with -f files (later wins)
//     and --set key.path=value; a null in the user's values deletes a default;
//     values are read as Helm reads them (through JSON: numbers are float64);
//   - subcharts: every chart directory in charts/ and every dependency whose
//     repository is file://PATH (what `helm dependency build` would vendor),
//     with aliases, conditions, value scoping (.Values.<name> of the parent)
//     and global values copied down;
//   - values.schema.json of each chart (JSON Schema, gojsonschema as in Helm 3)
//     checked against the coalesced values before rendering: on failure it
//     prints Helm's message and exits 1;
//   - Chart.yaml's kubeVersion checked against --kube-version;
//   - templates: all charts' templates parsed into one set (so a parent can
//     include a subchart's named templates), partials (_*) not rendered,
//     missingkey=zero and "<no value>" removed, functions: sprig minus env and
//     expandenv, toYaml, fromYaml, fromYamlArray, toJson, fromJson,
//     fromJsonArray, include, tpl, required, fail, lookup (always empty);
//   - objects: .Values .Release .Chart .Capabilities (.KubeVersion,
//     .APIVersions.Has) .Files (Get GetBytes Glob Lines AsConfig AsSecrets)
//     .Template .Subcharts;
//   - output: YAML documents in Helm's install order, each preceded by
//     "# Source: <template>", as `helm template` prints them.
//
// Not implemented (the chart does not use them): tags, import-values,
// toToml, .tgz subcharts, --set lists and escapes, strict mode.
//
// Usage:
//
//	render [-f values.yaml]... [--set a.b=c]... [--name NAME] [--namespace NS]
//	       [--kube-version v1.29.0] [--api-versions group/version]...
//	       [--notes-out FILE] [--values-out FILE] CHART_DIR
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"github.com/Masterminds/sprig/v3"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

// ---------------------------------------------------------------------------
// Charts

// Metadata mirrors Helm's chart.Metadata: templates see it as .Chart.
type Metadata struct {
	Name         string            `json:"name"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []interface{}     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []*Dependency     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// Dependency is one entry of Chart.yaml's dependencies.
type Dependency struct {
	Name         string        `json:"name"`
	Version      string        `json:"version,omitempty"`
	Repository   string        `json:"repository"`
	Condition    string        `json:"condition,omitempty"`
	Tags         []string      `json:"tags,omitempty"`
	Enabled      bool          `json:"enabled,omitempty"`
	ImportValues []interface{} `json:"import-values,omitempty"`
	Alias        string        `json:"alias,omitempty"`
}

// Chart is a loaded chart directory.
type Chart struct {
	Dir       string
	Meta      *Metadata
	Values    map[string]interface{}
	Schema    []byte
	Templates map[string]string // path relative to the chart ("templates/x.yaml") -> text
	Files     Files             // every other file, as Helm's loader keeps them
	Deps      []*Chart
	Parent    *Chart
}

// Name is the chart's name, or its alias as a dependency.
func (c *Chart) Name() string { return c.Meta.Name }

// FullPath is the template name prefix Helm uses: top/charts/sub/charts/...
func (c *Chart) FullPath() string {
	if c.Parent == nil {
		return c.Name()
	}
	return c.Parent.FullPath() + "/charts/" + c.Name()
}

func readYAMLMap(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m, nil
}

// helmignore holds the patterns of a chart's .helmignore.
type helmignore []string

func loadHelmignore(dir string) helmignore {
	data, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if err != nil {
		return nil
	}
	var pats helmignore
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pats = append(pats, line)
	}
	return pats
}

// ignored reports whether rel (slash-separated, relative to the chart) is
// excluded: a pattern matches the base name or the whole path, a pattern
// ending in / matches directories.
func (h helmignore) ignored(rel string, isDir bool) bool {
	for _, p := range h {
		neg := strings.HasPrefix(p, "!")
		if neg {
			continue // negations: not supported, never needed here
		}
		dirOnly := strings.HasSuffix(p, "/")
		p = strings.TrimSuffix(p, "/")
		if dirOnly && !isDir {
			continue
		}
		if ok, _ := path.Match(p, path.Base(rel)); ok {
			return true
		}
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
	}
	return false
}

func loadChart(dir string, parent *Chart) (*Chart, error) {
	c := &Chart{Dir: dir, Parent: parent, Templates: map[string]string{}, Files: Files{}}
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, fmt.Errorf("%s is not a chart: %v", dir, err)
	}
	c.Meta = &Metadata{}
	if err := yaml.UnmarshalStrict(raw, c.Meta); err != nil {
		return nil, fmt.Errorf("%s/Chart.yaml: %v", dir, err)
	}
	if c.Meta.APIVersion != "v2" {
		return nil, fmt.Errorf("%s/Chart.yaml: apiVersion must be v2, got %q", dir, c.Meta.APIVersion)
	}
	if c.Meta.Name == "" {
		return nil, fmt.Errorf("%s/Chart.yaml: name is required", dir)
	}
	if _, err := semver.StrictNewVersion(c.Meta.Version); err != nil {
		return nil, fmt.Errorf("%s/Chart.yaml: version %q is not SemVer 2: %v", dir, c.Meta.Version, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "values.yaml")); err == nil {
		if c.Values, err = readYAMLMap(filepath.Join(dir, "values.yaml")); err != nil {
			return nil, err
		}
	} else {
		c.Values = map[string]interface{}{}
	}
	if s, err := os.ReadFile(filepath.Join(dir, "values.schema.json")); err == nil {
		c.Schema = s
	}
	ignore := loadHelmignore(dir)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignore.ignored(rel, info.IsDir()) {
			if info.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if info.IsDir() {
			if rel == "charts" {
				return filepath.SkipDir // loaded below as subcharts
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.Templates[rel] = string(data)
		case rel == "Chart.yaml", rel == "values.yaml", rel == "values.schema.json",
			rel == "Chart.lock", rel == "requirements.yaml", rel == "requirements.lock":
		default:
			c.Files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// Subcharts: directories in charts/, then file:// dependencies not found there.
	byName := map[string]*Chart{}
	entries, _ := os.ReadDir(filepath.Join(dir, "charts"))
	for _, e := range entries {
		if !e.IsDir() {
			if strings.HasSuffix(e.Name(), ".tgz") {
				return nil, fmt.Errorf("%s/charts/%s: packaged subcharts are not supported by this renderer; unpack it", dir, e.Name())
			}
			continue
		}
		sub, err := loadChart(filepath.Join(dir, "charts", e.Name()), c)
		if err != nil {
			return nil, err
		}
		byName[sub.Meta.Name] = sub
	}
	for _, d := range c.Meta.Dependencies {
		if _, ok := byName[d.Name]; ok {
			continue
		}
		if !strings.HasPrefix(d.Repository, "file://") {
			return nil, fmt.Errorf("%s: dependency %q is not in charts/ and its repository %q is not file://", dir, d.Name, d.Repository)
		}
		p := strings.TrimPrefix(d.Repository, "file://")
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		sub, err := loadChart(p, c)
		if err != nil {
			return nil, err
		}
		if sub.Meta.Name != d.Name {
			return nil, fmt.Errorf("%s: dependency %q: the chart at %s is named %q", dir, d.Name, p, sub.Meta.Name)
		}
		byName[d.Name] = sub
	}
	// Dependencies listed in Chart.yaml: version constraint and alias.
	listed := map[string]bool{}
	for _, d := range c.Meta.Dependencies {
		sub := byName[d.Name]
		listed[d.Name] = true
		if d.Version != "" {
			cons, err := semver.NewConstraint(d.Version)
			if err != nil {
				return nil, fmt.Errorf("%s: dependency %q: bad version constraint %q: %v", dir, d.Name, d.Version, err)
			}
			v, _ := semver.NewVersion(sub.Meta.Version)
			if !cons.Check(v) {
				return nil, fmt.Errorf("%s: dependency %q: version %s does not satisfy %q", dir, d.Name, sub.Meta.Version, d.Version)
			}
		}
		if d.Alias != "" {
			meta := *sub.Meta
			meta.Name = d.Alias
			sub.Meta = &meta
		}
		c.Deps = append(c.Deps, sub)
	}
	var rest []string
	for name := range byName {
		if !listed[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		c.Deps = append(c.Deps, byName[name])
	}
	return c, nil
}

// ---------------------------------------------------------------------------
// Values

func copyValue(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		m := make(map[string]interface{}, len(t))
		for k, x := range t {
			m[k] = copyValue(x)
		}
		return m
	case []interface{}:
		l := make([]interface{}, len(t))
		for i, x := range t {
			l[i] = copyValue(x)
		}
		return l
	default:
		return v
	}
}

// mergeMaps lays b over a (user files: later -f wins, maps merge deeply).
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := copyValue(a).(map[string]interface{})
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if om, ok := out[k].(map[string]interface{}); ok {
				out[k] = mergeMaps(om, vm)
				continue
			}
		}
		out[k] = copyValue(v)
	}
	return out
}

// coalesceTables fills dst (user values) with src (chart defaults), as
// Helm's chartutil.coalesceTablesFullKey: a nil in dst deletes the key.
func coalesceTables(dst, src map[string]interface{}) {
	for key, val := range src {
		dv, ok := dst[key]
		if ok && dv == nil {
			delete(dst, key)
			continue
		}
		if !ok {
			dst[key] = copyValue(val)
			continue
		}
		if srcMap, isMap := val.(map[string]interface{}); isMap {
			if dstMap, isMap := dv.(map[string]interface{}); isMap {
				coalesceTables(dstMap, srcMap)
			} else {
				fmt.Fprintf(os.Stderr, "warning: cannot overwrite table with non table for %s (%v)\n", key, dv)
			}
		} else if _, isMap := dv.(map[string]interface{}); isMap && val != nil {
			fmt.Fprintf(os.Stderr, "warning: destination for %s is a table; ignoring non-table value (%v)\n", key, val)
		}
	}
	// A nil the user set for a key the chart does not have: Helm drops it too.
	for key, val := range dst {
		if val == nil {
			if _, inSrc := src[key]; !inSrc {
				delete(dst, key)
			}
		}
	}
}

// coalesce merges chart c's defaults (and its subcharts', scoped under their
// names, with globals copied down) into v.
func coalesce(c *Chart, v map[string]interface{}) {
	coalesceTables(v, c.Values)
	for _, sub := range c.Deps {
		sv, ok := v[sub.Name()].(map[string]interface{})
		if !ok {
			sv = map[string]interface{}{}
			v[sub.Name()] = sv
		}
		// globals: the parent's win over the subchart's own
		pg, _ := v["global"].(map[string]interface{})
		sg, _ := sv["global"].(map[string]interface{})
		merged := map[string]interface{}{}
		for k, x := range sg {
			merged[k] = x
		}
		for k, x := range pg {
			merged[k] = copyValue(x)
		}
		sv["global"] = merged
		coalesce(sub, sv)
	}
}

// pathValue returns the value at a dotted path in m, if any.
func pathValue(m map[string]interface{}, p string) (interface{}, bool) {
	cur := interface{}(m)
	for _, part := range strings.Split(p, ".") {
		mm, ok := cur.(map[string]interface{})
		if !ok {
			return nil, false
		}
		cur, ok = mm[part]
		if !ok {
			return nil, false
		}
	}
	return cur, true
}

// applyConditions removes the dependencies whose condition is false, as
// Helm's ProcessDependencies does (the first condition path that is a bool
// decides; none: enabled).
func applyConditions(c *Chart, v map[string]interface{}) {
	var kept []*Chart
	for _, sub := range c.Deps {
		enabled := true
		for _, d := range c.Meta.Dependencies {
			if (d.Alias != "" && d.Alias == sub.Name()) || (d.Alias == "" && d.Name == sub.Name()) {
				for _, cond := range strings.Split(d.Condition, ",") {
					cond = strings.TrimSpace(cond)
					if cond == "" {
						continue
					}
					if b, ok := pathValue(v, cond); ok {
						if bb, ok := b.(bool); ok {
							enabled = bb
							break
						}
					}
				}
			}
		}
		if enabled {
			kept = append(kept, sub)
			if sv, ok := v[sub.Name()].(map[string]interface{}); ok {
				applyConditions(sub, sv)
			}
		}
	}
	c.Deps = kept
}

// setValue applies one --set key.path=value (no lists, no escapes).
func setValue(m map[string]interface{}, expr string) error {
	eq := strings.Index(expr, "=")
	if eq <= 0 {
		return fmt.Errorf("--set %q: expected key=value", expr)
	}
	key, raw := expr[:eq], expr[eq+1:]
	var val interface{}
	switch {
	case raw == "true":
		val = true
	case raw == "false":
		val = false
	case raw == "null":
		val = nil
	default:
		if i, err := strconv.ParseInt(raw, 10, 64); err == nil {
			val = i
		} else {
			val = raw
		}
	}
	parts := strings.Split(key, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = val
	return nil
}

// validateSchemas checks v against c's schema and each subchart's scope
// against its own, as Helm's chartutil.ValidateAgainstSchema.
func validateSchemas(c *Chart, v map[string]interface{}) string {
	var sb strings.Builder
	if len(c.Schema) > 0 {
		doc, err := json.Marshal(v)
		if err != nil {
			sb.WriteString(fmt.Sprintf("%s:\n- %v\n", c.Name(), err))
		} else {
			res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(c.Schema), gojsonschema.NewBytesLoader(doc))
			if err != nil {
				sb.WriteString(fmt.Sprintf("%s:\n- the schema itself is invalid: %v\n", c.Name(), err))
			} else if !res.Valid() {
				sb.WriteString(c.Name() + ":\n")
				for _, e := range res.Errors() {
					sb.WriteString(fmt.Sprintf("- %s\n", e))
				}
			}
		}
	}
	for _, sub := range c.Deps {
		sv, _ := v[sub.Name()].(map[string]interface{})
		sb.WriteString(validateSchemas(sub, sv))
	}
	return sb.String()
}

// ---------------------------------------------------------------------------
// Objects templates see

// Files is .Files: the chart's non-template files.
type Files map[string][]byte

// Get returns a file's content, or "" if there is none.
func (f Files) Get(name string) string { return string(f[name]) }

// GetBytes returns a file's content as bytes.
func (f Files) GetBytes(name string) []byte { return f[name] }

// Lines returns a file's lines.
func (f Files) Lines(name string) []string {
	if f == nil || f[name] == nil {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(string(f[name]), "\n"), "\n")
}

var globCache = map[string]*regexp.Regexp{}

func globRegexp(pattern string) *regexp.Regexp {
	if re, ok := globCache[pattern]; ok {
		return re
	}
	var sb strings.Builder
	sb.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		ch := pattern[i]
		switch ch {
		case '*':
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				sb.WriteString(".*")
				i++
			} else {
				sb.WriteString("[^/]*")
			}
		case '?':
			sb.WriteString("[^/]")
		default:
			sb.WriteString(regexp.QuoteMeta(string(ch)))
		}
	}
	sb.WriteString("$")
	re := regexp.MustCompile(sb.String())
	globCache[pattern] = re
	return re
}

// Glob returns the files whose path matches pattern (*, ?, **).
func (f Files) Glob(pattern string) Files {
	out := Files{}
	re := globRegexp(pattern)
	for name, data := range f {
		if re.MatchString(name) {
			out[name] = data
		}
	}
	return out
}

// AsConfig renders the files as a ConfigMap's data (base name: content).
func (f Files) AsConfig() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = string(v)
	}
	return toYAML(m)
}

// AsSecrets renders the files as a Secret's data (base name: base64).
func (f Files) AsSecrets() string {
	if len(f) == 0 {
		return ""
	}
	m := map[string]string{}
	for k, v := range f {
		m[path.Base(k)] = base64.StdEncoding.EncodeToString(v)
	}
	return toYAML(m)
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has reports whether the API version (group/version, or
// group/version/Kind) is available.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// Capabilities is .Capabilities.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// The API versions of a plain cluster of the versions this chart targets.
var builtinAPIVersions = []string{
	"v1", "apps/v1", "batch/v1", "autoscaling/v1", "autoscaling/v2", "policy/v1",
	"networking.k8s.io/v1", "rbac.authorization.k8s.io/v1", "storage.k8s.io/v1",
	"coordination.k8s.io/v1", "discovery.k8s.io/v1", "scheduling.k8s.io/v1",
	"apiextensions.k8s.io/v1", "admissionregistration.k8s.io/v1",
}

// ---------------------------------------------------------------------------
// Functions (Helm's engine/funcs.go)

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(str string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(str string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

const recursionMax = 1000

func warnWrap(msg string) string { return msg }

func includeFun(t *template.Template, names map[string]int) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		if names[name] > recursionMax {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		names[name]++
		var buf strings.Builder
		err := t.ExecuteTemplate(&buf, name, data)
		names[name]--
		return buf.String(), err
	}
}

func tplFun(parent *template.Template, names map[string]int) func(string, interface{}) (string, error) {
	return func(text string, vals interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %v", err)
		}
		t.Option("missingkey=zero")
		t.Funcs(template.FuncMap{
			"include": includeFun(t, names),
			"tpl":     tplFun(t, names),
		})
		t, err = t.New(parent.Name()).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

func funcMap(t *template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	names := map[string]int{}
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"toToml": func(interface{}) (string, error) {
			return "", errors.New("toToml is not supported by this renderer")
		},
		"include": includeFun(t, names),
		"tpl":     tplFun(t, names),
		"required": func(warn string, val interface{}) (interface{}, error) {
			if val == nil {
				return val, errors.New(warnWrap(warn))
			} else if s, ok := val.(string); ok && s == "" {
				return val, errors.New(warnWrap(warn))
			}
			return val, nil
		},
		"fail": func(msg string) (string, error) {
			return "", errors.New(warnWrap(msg))
		},
		"lookup": func(string, string, string, string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// ---------------------------------------------------------------------------
// Rendering

type renderable struct {
	name     string // full template name: chart/templates/x.yaml
	text     string
	basePath string
	vals     map[string]interface{}
}

// collect walks the chart tree and builds each template's context.
func collect(c *Chart, vals map[string]interface{}, top map[string]interface{}, out *[]renderable) {
	subcharts := map[string]interface{}{}
	next := map[string]interface{}{
		"Chart":        c.Meta,
		"Files":        c.Files,
		"Release":      top["Release"],
		"Capabilities": top["Capabilities"],
		"Values":       vals,
		"Subcharts":    subcharts,
	}
	for _, sub := range c.Deps {
		sv, _ := vals[sub.Name()].(map[string]interface{})
		if sv == nil {
			sv = map[string]interface{}{}
		}
		var subOut []renderable
		collect(sub, sv, top, &subOut)
		subcharts[sub.Name()] = map[string]interface{}{"Chart": sub.Meta, "Values": sv, "Files": sub.Files}
		*out = append(*out, subOut...)
	}
	for rel, text := range c.Templates {
		*out = append(*out, renderable{
			name:     c.FullPath() + "/" + rel,
			text:     text,
			basePath: c.FullPath() + "/templates",
			vals:     next,
		})
	}
}

// sortTemplates orders templates as Helm does: deepest path first, then by name.
func sortTemplates(r []renderable) {
	sort.Slice(r, func(i, j int) bool {
		a, b := r[i].name, r[j].name
		la, lb := strings.Count(a, "/"), strings.Count(b, "/")
		if la != lb {
			return la > lb
		}
		return a < b
	})
}

func render(tpls []renderable) (map[string]string, error) {
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	t.Funcs(funcMap(t))
	sortTemplates(tpls)
	for _, r := range tpls {
		if _, err := t.New(r.name).Parse(r.text); err != nil {
			return nil, fmt.Errorf("parse error: %v", err)
		}
	}
	out := map[string]string{}
	for _, r := range tpls {
		if strings.HasPrefix(path.Base(r.name), "_") {
			continue
		}
		vals := map[string]interface{}{}
		for k, v := range r.vals {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": r.name, "BasePath": r.basePath}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, r.name, vals); err != nil {
			return nil, cleanupExecError(r.name, err)
		}
		out[r.name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}

// cleanupExecError turns text/template's error into Helm's
// "execution error at (<where>): <message>" when it is a fail/required.
func cleanupExecError(name string, err error) error {
	msg := err.Error()
	re := regexp.MustCompile(`^template: (\S+): executing "[^"]*" at <[^>]*>: error calling (?:fail|required): (.*)$`)
	if m := re.FindStringSubmatch(strings.SplitN(msg, "\n", 2)[0]); m != nil {
		return fmt.Errorf("execution error at (%s): %s", m[1], m[2])
	}
	// Nested includes: keep the innermost message.
	if i := strings.LastIndex(msg, "error calling fail: "); i >= 0 {
		return fmt.Errorf("execution error in %s: %s", name, msg[i+len("error calling fail: "):])
	}
	if i := strings.LastIndex(msg, "error calling required: "); i >= 0 {
		return fmt.Errorf("execution error in %s: %s", name, msg[i+len("error calling required: "):])
	}
	return err
}

// Helm's kind install order (releaseutil.InstallOrder).
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
	"ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
	"CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
	"ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
	"DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
	"APIService",
}

var docSep = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

type manifest struct {
	source  string
	content string
	kind    string
	index   int
}

func kindRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}

func sortedManifests(rendered map[string]string) []manifest {
	var names []string
	for n := range rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	var ms []manifest
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") {
			continue
		}
		for _, d := range docSep.Split(strings.TrimSpace(rendered[n]), -1) {
			d = strings.TrimSpace(d)
			if d == "" {
				continue
			}
			var head struct {
				Kind string `json:"kind"`
			}
			_ = yaml.Unmarshal([]byte(d), &head)
			ms = append(ms, manifest{source: n, content: d, kind: head.Kind, index: len(ms)})
		}
	}
	sort.SliceStable(ms, func(i, j int) bool {
		ri, rj := kindRank(ms[i].kind), kindRank(ms[j].kind)
		if ri != rj {
			return ri < rj
		}
		return ms[i].index < ms[j].index
	})
	return ms
}

// ---------------------------------------------------------------------------
// main

type multi []string

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "Error: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	var valueFiles, sets, apiVersions multi
	name, namespace, kube, notesOut, valuesOut := "release-name", "default", "v1.29.0", "", ""
	var chartDir string
	args := os.Args[1:]
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() string {
			if eq := strings.Index(a, "="); eq > 0 && strings.HasPrefix(a, "--") {
				return a[eq+1:]
			}
			if i+1 >= len(args) {
				fail("%s needs a value", a)
			}
			i++
			return args[i]
		}
		flagName := a
		if eq := strings.Index(a, "="); eq > 0 && strings.HasPrefix(a, "--") {
			flagName = a[:eq]
		}
		switch flagName {
		case "-f", "--values":
			valueFiles = append(valueFiles, val())
		case "--set":
			sets = append(sets, val())
		case "--name":
			name = val()
		case "-n", "--namespace":
			namespace = val()
		case "--kube-version":
			kube = val()
		case "--api-versions", "-a":
			apiVersions = append(apiVersions, val())
		case "--notes-out":
			notesOut = val()
		case "--values-out":
			valuesOut = val()
		case "-h", "--help":
			fmt.Println("usage: render [-f values.yaml]... [--set a.b=c]... [--name NAME] [--namespace NS] [--kube-version v1.29.0] [--api-versions g/v]... [--notes-out FILE] [--values-out FILE] CHART_DIR")
			return
		default:
			if strings.HasPrefix(a, "-") {
				fail("unknown flag %s", a)
			}
			if chartDir != "" {
				fail("one chart directory only (got %s and %s)", chartDir, a)
			}
			chartDir = a
		}
	}
	if chartDir == "" {
		fail("no chart directory given")
	}

	chart, err := loadChart(chartDir, nil)
	if err != nil {
		fail("%v", err)
	}

	// Capabilities and the chart's kubeVersion.
	kv, err := semver.NewVersion(kube)
	if err != nil {
		fail("--kube-version %q: %v", kube, err)
	}
	caps := &Capabilities{
		KubeVersion: KubeVersion{
			Version:    "v" + kv.String(),
			Major:      strconv.FormatUint(kv.Major(), 10),
			Minor:      strconv.FormatUint(kv.Minor(), 10),
			GitVersion: "v" + kv.String(),
		},
		APIVersions: append(append(VersionSet{}, builtinAPIVersions...), apiVersions...),
		HelmVersion: map[string]string{"Version": "v3-compatible (tests/helm/render)"},
	}
	if chart.Meta.KubeVersion != "" {
		cons, err := semver.NewConstraint(chart.Meta.KubeVersion)
		if err != nil {
			fail("Chart.yaml kubeVersion %q: %v", chart.Meta.KubeVersion, err)
		}
		if !cons.Check(kv) {
			fail("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", chart.Meta.KubeVersion, caps.KubeVersion.Version)
		}
	}

	// Values: -f files in order, then --set, then the charts' defaults.
	user := map[string]interface{}{}
	for _, f := range valueFiles {
		m, err := readYAMLMap(f)
		if err != nil {
			fail("%v", err)
		}
		user = mergeMaps(user, m)
	}
	for _, s := range sets {
		if err := setValue(user, s); err != nil {
			fail("%v", err)
		}
	}
	// Conditions are evaluated on the values with defaults, then the
	// disabled subcharts' values are left out of the coalescing.
	probe := copyValue(user).(map[string]interface{})
	coalesce(chart, probe)
	applyConditions(chart, probe)
	vals := user
	coalesce(chart, vals)

	if msg := validateSchemas(chart, vals); msg != "" {
		fail("values don't meet the specifications of the schema(s) in the following chart(s):\n%s", msg)
	}
	if valuesOut != "" {
		if err := os.WriteFile(valuesOut, []byte(toYAML(vals)+"\n"), 0o644); err != nil {
			fail("%v", err)
		}
	}

	top := map[string]interface{}{
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": caps,
	}
	var tpls []renderable
	collect(chart, vals, top, &tpls)
	rendered, err := render(tpls)
	if err != nil {
		fail("%v", err)
	}

	var out bytes.Buffer
	for _, m := range sortedManifests(rendered) {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	os.Stdout.Write(out.Bytes())

	if notesOut != "" {
		notes := rendered[chart.Name()+"/templates/NOTES.txt"]
		if err := os.WriteFile(notesOut, []byte(notes), 0o644); err != nil {
			fail("%v", err)
		}
	}
}
