package perf

import (
	"bytes"
	"fmt"
	"image/color"
	"path/filepath"
	"strings"

	"github.com/pglite-oxide/pgxtask/internal/atomicfile"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// systemColors gives each system the same colour in every chart.
var systemColors = map[string]color.Color{
	SystemPgxtask: color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	SystemNative:  color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	SystemPGlite:  color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

// WriteChart draws one horizontal bar chart per suite of the report (the
// headline figure of every test, one bar per system, in milliseconds) in a
// single image, stacked top to bottom, and writes it atomically to path.
// The format follows the extension: .svg or .png.
func (r *Report) WriteChart(path string) error {
	ext := strings.ToLower(filepath.Ext(path))
	if ext != ".svg" && ext != ".png" {
		return fmt.Errorf("chart %s: the file name must end in .svg or .png", path)
	}
	var plots [][]*plot.Plot
	maxRows := 0
	for _, s := range r.Suites {
		p, err := r.suitePlot(s)
		if err != nil {
			return fmt.Errorf("chart %s: %w", path, err)
		}
		plots = append(plots, []*plot.Plot{p})
		if n := len(s.Tests) * len(r.Systems); n > maxRows {
			maxRows = n
		}
	}
	if len(plots) == 0 {
		return fmt.Errorf("chart %s: the report holds no suite", path)
	}
	width := 8 * vg.Inch
	tileHeight := vg.Length(maxRows)*9*vg.Millimeter/4 + 2*vg.Inch
	height := tileHeight * vg.Length(len(plots))

	var c interface {
		vg.CanvasWriterTo
	}
	if ext == ".svg" {
		c = vgsvg.New(width, height)
	} else {
		c = vgimg.PngCanvas{Canvas: vgimg.New(width, height)}
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadY: vg.Millimeter * 4, PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return fmt.Errorf("chart %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644)
}

func (r *Report) suitePlot(s SuiteResult) (*plot.Plot, error) {
	p := plot.New()
	head := headlineLabel(s.Headline)
	p.Title.Text = fmt.Sprintf("perf %s: %s suite (%s), %s per test, ms (shorter is faster)", r.Command, s.Suite, s.Mode, head)
	p.X.Label.Text = "ms"
	p.X.Min = 0
	// Test labels top to bottom in run order: nominal Y counts upwards.
	n := len(s.Tests)
	labels := make([]string, n)
	for i, t := range s.Tests {
		name := t.Name
		if len(name) > 42 {
			name = name[:41] + "…"
		}
		labels[n-1-i] = t.ID + ": " + name
	}
	p.NominalY(labels...)
	nsys := len(r.Systems)
	barWidth := vg.Points(7)
	maxVal := 0.0
	for si, sys := range r.Systems {
		vals := make(plotter.Values, n)
		for i, t := range s.Tests {
			if f, ok := figureFor(t.Figures, sys.Name); ok && f.Skipped == "" {
				vals[n-1-i] = finiteOr(headline(f.Stats, s.Headline)/1e3, 0)
				maxVal = max(maxVal, vals[n-1-i])
			}
		}
		bars, err := plotter.NewBarChart(vals, barWidth)
		if err != nil {
			return nil, err
		}
		bars.Horizontal = true
		bars.LineStyle.Width = 0
		if c, ok := systemColors[sys.Name]; ok {
			bars.Color = c
		}
		bars.Offset = barWidth * vg.Length(float64(nsys-1)/2-float64(si))
		p.Add(bars)
		p.Legend.Add(sys.Name, bars)
	}
	// Headroom on the right for the legend and the longest bar.
	p.X.Max = maxVal * 1.2
	p.Legend.Top = true
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	return p, nil
}
