package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/signet-dev/signet/internal/testtime"
)

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title      string
	UID        string
	Templating struct {
		List []struct {
			Name       string
			Type       string
			Definition string
		}
	}
	Panels []panel
}

type panel struct {
	ID         int
	Type       string
	Title      string
	Datasource struct{ UID string }
	GridPos    struct{ X, Y, W, H int }
	Targets    []struct {
		Expr       string
		Datasource struct{ UID string }
	}
}

func loadDashboard(t *testing.T) *dashboard {
	t.Helper()
	data, err := os.ReadFile("grafana/signet.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana/signet.json: %v", err)
	}
	return &d
}

// grafanaVars stand for the dashboard's variables as Grafana would
// substitute them, so that each query parses as the PromQL Prometheus
// receives.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "1m",
	"$__interval", "1m",
	"$__range", "1h",
	"$job", ".*",
	"$instance", ".*",
)

// Labels Prometheus adds to every series it scrapes.
var targetLabels = []string{"job", "instance"}

// scrapeFamilies reads a /metrics page.
func scrapeFamilies(t *testing.T, body []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return fams
}

// family returns the family a series name belongs to: itself, or the
// histogram or summary whose _bucket, _sum or _count it is.
func family(fams map[string]*dto.MetricFamily, name string) (*dto.MetricFamily, bool) {
	if f, ok := fams[name]; ok {
		return f, false
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if f, ok := fams[base]; ok && (f.GetType() == dto.MetricType_HISTOGRAM || suffix != "_bucket" && f.GetType() == dto.MetricType_SUMMARY) {
				return f, suffix == "_bucket"
			}
		}
	}
	return nil, false
}

// labelValues returns the label names of a family's series, each with the
// values seen.
func labelValues(f *dto.MetricFamily, bucket bool) map[string][]string {
	out := map[string][]string{}
	for _, name := range targetLabels {
		out[name] = nil
	}
	if bucket {
		out["le"] = nil
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(out[l.GetName()], l.GetValue()) {
				out[l.GetName()] = append(out[l.GetName()], l.GetValue())
			}
		}
	}
	return out
}

// checkQuery parses a dashboard query and checks it against the metrics a
// real gateway exposes: every metric exists, every label matched or
// grouped by is one of its labels, and every value matched exactly is one
// it takes.
func checkQuery(fams map[string]*dto.MetricFamily, query string) error {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVars.Replace(query))
	if err != nil {
		return fmt.Errorf("not PromQL: %v", err)
	}
	known := map[string][]string{}
	var errs []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		f, bucket := family(fams, vs.Name)
		if f == nil {
			errs = append(errs, fmt.Sprintf("metric %s is not in /metrics", vs.Name))
			return nil
		}
		values := labelValues(f, bucket)
		for name, v := range values {
			known[name] = append(known[name], v...)
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				continue
			}
			seen, ok := values[m.Name]
			switch {
			case !ok:
				errs = append(errs, fmt.Sprintf("%s has no label %s", vs.Name, m.Name))
			case m.Type == labels.MatchEqual && !slices.Contains(targetLabels, m.Name) && !slices.Contains(seen, m.Value):
				errs = append(errs, fmt.Sprintf("%s{%s} is never %q (seen: %q)", vs.Name, m.Name, m.Value, seen))
			}
		}
		return nil
	})
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		if a, ok := n.(*parser.AggregateExpr); ok {
			for _, l := range a.Grouping {
				if _, ok := known[l]; !ok && !a.Without {
					errs = append(errs, fmt.Sprintf("grouped by %s, a label none of its metrics has", l))
				}
			}
		}
		return nil
	})
	if errs != nil {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

var labelValuesQuery = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)

// TestGrafanaDashboard checks every query of deploy/grafana/signet.json
// against the /metrics page of a real signet serve that has accepted,
// refused and (its key store gone) failed requests.
func TestGrafanaDashboard(t *testing.T) {
	d := loadDashboard(t)
	bin := signetBinary(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "signet.db")
	env := []string{"HOME=" + dir}
	_, admin := adminKey(t, env, db)
	up := newUpstream(t)
	s := startServe(t, bin, []string{"serve", "--upstream", up.URL, "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--db", db, "--owner-rate", "2/h"}, append(os.Environ(), env...))

	for i := range 2 {
		if code, body := get(t, admin, "http://"+s.addr+"/orders"); code != 200 {
			t.Fatalf("signed request %d: %d %s", i, code, body)
		}
	}
	// The owner's rate is spent: rate-limited.
	if code, body := get(t, admin, "http://"+s.addr+"/orders"); code != 429 {
		t.Fatalf("signed request over the owner's rate: %d %s", code, body)
	}
	if code, _ := get(t, http.DefaultClient, "http://"+s.addr+"/orders"); code != 401 {
		t.Fatalf("unsigned request: %d", code)
	}
	// The key store's file goes away: the gateway refuses every key (503)
	// until it is back, and counts a key store error.
	if err := os.Rename(db, db+".moved"); err != nil {
		t.Fatal(err)
	}
	_, other := adminKey(t, []string{"HOME=" + t.TempDir()}, filepath.Join(dir, "other.db"))
	testtime.Eventually(t, 10*time.Second, func() error {
		if code, _ := get(t, other, "http://"+s.addr+"/orders"); code != 503 {
			return fmt.Errorf("a key lookup with the key store gone: %d, want 503", code)
		}
		return nil
	})
	code, body := get(t, http.DefaultClient, "http://"+s.admin+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	fams := scrapeFamilies(t, body)

	queries := 0
	ids := map[int]bool{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.X+p.GridPos.W > 24 || p.GridPos.W <= 0 || p.GridPos.H <= 0 {
			t.Errorf("panel %q: gridPos %+v does not fit a 24-column grid", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %q, want the dashboard's ${datasource} variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			queries++
			if q.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q: a query's data source is %q", p.Title, q.Datasource.UID)
			}
			if err := checkQuery(fams, q.Expr); err != nil {
				t.Errorf("panel %q: %s: %v", p.Title, q.Expr, err)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		m := labelValuesQuery.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		if err := checkQuery(fams, fmt.Sprintf("sum by (%s) (%s)", m[2], m[1])); err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
		}
	}
	if queries < 10 {
		t.Errorf("only %d queries in the dashboard", queries)
	}
	checkPanelsDoNotOverlap(t, d.Panels)
}

func checkPanelsDoNotOverlap(t *testing.T, panels []panel) {
	t.Helper()
	for i, a := range panels {
		for _, b := range panels[i+1:] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
}
