package admin

import (
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"net/http"
	"strings"
)

// The dashboard is one HTML page with its style and script inline: no
// build step, no external resources. It polls GET /status every second,
// computes request rates from successive snapshots, and posts the drain,
// enable and disable buttons to the API.
//
//go:embed dashboard.html
var files embed.FS

var page = mustRead("dashboard.html")

// pageCSP allows the page's own inline style and script (by their hashes)
// and requests to this listener, nothing else; no other site may frame it.
var pageCSP = "default-src 'none'; " +
	"style-src " + inlineHash(page, "<style>", "</style>") + "; " +
	"script-src " + inlineHash(page, "<script>", "</script>") + "; " +
	"connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: cannot fail
	}
	return string(b)
}

// inlineHash returns the CSP source for the inline element between open
// and close in html, which must occur once.
func inlineHash(html, open, close string) string {
	_, rest, ok := strings.Cut(html, open)
	body, _, ok2 := strings.Cut(rest, close)
	if !ok || !ok2 {
		panic("dashboard.html: no " + open + " element")
	}
	sum := sha256.Sum256([]byte(body))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// dashboard answers GET /.
func (h *Handler) dashboard(w http.ResponseWriter, _ *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Security-Policy", pageCSP)
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write([]byte(page))
}
