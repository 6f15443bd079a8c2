// Command metricnames reads PromQL expressions, one JSON string per line on
// stdin, parses each with Prometheus's own parser, and prints the metric
// names each selects, one JSON array per line. A query that does not parse
// is an error naming it. test/monitoring uses it to check that the shipped
// dashboard and alerts name only metrics the manager exports.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

func main() {
	promql := parser.NewParser(parser.Options{})
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		var query string
		if err := json.Unmarshal(in.Bytes(), &query); err != nil {
			fail("not a JSON string: %s", in.Text())
		}
		expr, err := promql.ParseExpr(query)
		if err != nil {
			fail("%q: %v", query, err)
		}
		names := []string{}
		parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
			if vs, ok := node.(*parser.VectorSelector); ok {
				for _, m := range vs.LabelMatchers {
					if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
						names = append(names, m.Value)
					}
				}
			}
			return nil
		})
		slices.Sort(names)
		if err := out.Encode(slices.Compact(names)); err != nil {
			fail("%v", err)
		}
	}
	if err := in.Err(); err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "metricnames: "+format+"\n", args...)
	os.Exit(1)
}
