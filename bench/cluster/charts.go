package cluster

import (
	"maps"
	"os"
	"slices"

	"github.com/grpcmgmt/grpcmgmt/internal/chart"
)

// PerReplicaChart writes an SVG of calls per second per replica.
func PerReplicaChart(path, title string, per []map[string]int, markers ...chart.Marker) error {
	names := map[string]bool{}
	for _, m := range per {
		for k := range m {
			if k != "" {
				names[k] = true
			}
		}
	}
	c := chart.Line{Title: title, XLabel: "seconds", YLabel: "calls/s", Markers: markers}
	for _, n := range slices.Sorted(maps.Keys(names)) {
		s := chart.Series{Name: n}
		for i, m := range per {
			s.Points = append(s.Points, chart.Point{X: float64(i), Y: float64(m[n])})
		}
		c.Series = append(c.Series, s)
	}
	return WriteChart(path, c)
}

// WriteChart writes c as an SVG file at path.
func WriteChart(path string, c chart.Line) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
