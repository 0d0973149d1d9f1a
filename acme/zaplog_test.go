package acme

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
)

func TestZapLinesComeOutThroughHclog(t *testing.T) {
	var buf bytes.Buffer
	zl := zapLogger(hclog.New(&hclog.LoggerOptions{Name: "certmagic", Output: &buf, Level: hclog.Info}))
	zl.Info("obtaining certificate", zap.String("identifier", "example.test")) // chatty: Debug, not shown
	zl.Named("obtain").With(zap.String("identifier", "example.test")).Error("could not get certificate from issuer", zap.Error(errors.New("boom")))
	out := buf.String()
	if strings.Contains(out, "obtaining certificate") {
		t.Errorf("certmagic's Info line came out at Info:\n%s", out)
	}
	for _, want := range []string{"[ERROR] certmagic: could not get certificate from issuer:", "component=obtain", "error=boom", "identifier=example.test"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
