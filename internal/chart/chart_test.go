package chart

import (
	"bytes"
	"encoding/xml"
	"io"
	"strings"
	"testing"
)

func TestLineIsWellFormedSVG(t *testing.T) {
	c := Line{
		Title: "calls/s <per> replica", XLabel: "s", YLabel: "calls/s",
		Series:  []Series{{Name: "r1", Points: []Point{{0, 10}, {1, 20}}}, {Name: "r&2", Points: []Point{{0, 5}, {1, 7}}}},
		Markers: []Marker{{X: 0.5, Label: "added r4"}},
	}
	var buf bytes.Buffer
	if err := c.WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(&buf)
	polylines := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			polylines++
		}
	}
	if polylines != 2 {
		t.Errorf("%d polylines, want 2", polylines)
	}
}

func TestEmptyChartDoesNotPanic(t *testing.T) {
	var buf bytes.Buffer
	if err := (Line{}).WriteSVG(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(buf.String(), "<svg") {
		t.Error("no svg element")
	}
}
