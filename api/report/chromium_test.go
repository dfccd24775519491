package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/greenq/greenq/internal/testenv"
	"github.com/stretchr/testify/require"
)

// chromium finds a headless-capable Chromium; without one the test fails
// under CI and skips elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	testenv.Missing(t, "chromium is not installed (apt-get install chromium, or run `make test`, which does): HTML report not rendered in a browser")
	return ""
}

// runChromium runs one headless command against page and returns stdout.
func runChromium(t *testing.T, bin, page string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), "file://"+page)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	require.NoError(t, err, "chromium: %s", stderr.String())
	return out
}

func TestHTMLRendersInHeadlessChromium(t *testing.T) {
	t.Parallel()
	bin := chromium(t)
	jobs := loadJobs(t)
	r := Build(jobs, Options{})
	page := filepath.Join(t.TempDir(), "report.html")
	var buf bytes.Buffer
	require.NoError(t, Render(&buf, r, "html"))
	require.NoError(t, os.WriteFile(page, buf.Bytes(), 0o644))

	t.Run("dom", func(t *testing.T) {
		t.Parallel()
		dom := runChromium(t, bin, page, "--dump-dom")
		checkHTML(t, string(dom), r, independent(jobs))
	})
	t.Run("screenshot", func(t *testing.T) {
		t.Parallel()
		shot := filepath.Join(t.TempDir(), "report.png")
		runChromium(t, bin, page, "--screenshot="+shot, "--window-size=1200,3600", "--hide-scrollbars")
		f, err := os.Open(shot)
		require.NoError(t, err)
		defer f.Close()
		img, err := png.Decode(f)
		require.NoError(t, err)
		require.Equal(t, image.Pt(1200, 3600), img.Bounds().Size())
		// The plots were painted: the emitted bars' and GPU bars' colours
		// cover a fair number of pixels.
		require.Greater(t, countColour(img, 0xd9, 0x5f, 0x02), 500, "emitted bars")
		require.Greater(t, countColour(img, 0x1b, 0x9e, 0x77), 500, "GPU energy bars")
	})
	t.Run("pdf", func(t *testing.T) {
		t.Parallel()
		pdf := filepath.Join(t.TempDir(), "report.pdf")
		runChromium(t, bin, page, "--print-to-pdf="+pdf, "--no-pdf-header-footer")
		b, err := os.ReadFile(pdf)
		require.NoError(t, err)
		require.True(t, bytes.HasPrefix(b, []byte("%PDF-")), "a PDF")
		require.Greater(t, len(b), 10_000)
	})
}

// countColour counts pixels within a small distance of an RGB colour.
func countColour(img image.Image, r, g, b uint8) int {
	n := 0
	bounds := img.Bounds()
	near := func(a uint32, want uint8) bool {
		d := int(a>>8) - int(want)
		return d > -12 && d < 12
	}
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if near(pr, r) && near(pg, g) && near(pb, b) {
				n++
			}
		}
	}
	return n
}
