package acme

import (
	"maps"
	"slices"

	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// certmagic logs with zap; zapLogger sends its lines to an hclog logger
// instead, so that they come out in the process's format (text or JSON)
// with the others. certmagic's Info lines are chatty (each step of an
// order), so they come out at Debug, and its Warn and Error lines as they
// are: every failure to obtain or renew is at least a warning.
func zapLogger(log hclog.Logger) *zap.Logger {
	return zap.New(&hclogCore{log: log})
}

// hclogCore is a zapcore.Core writing to an hclog logger. It keeps no
// state but the fields With added, which each derived core copies.
type hclogCore struct {
	log    hclog.Logger
	fields []zapcore.Field
}

func (c *hclogCore) Enabled(l zapcore.Level) bool { return level(l) >= c.log.GetLevel() }

func (c *hclogCore) With(fields []zapcore.Field) zapcore.Core {
	return &hclogCore{log: c.log, fields: append(append([]zapcore.Field(nil), c.fields...), fields...)}
}

func (c *hclogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *hclogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range append(append([]zapcore.Field(nil), c.fields...), fields...) {
		f.AddTo(enc)
	}
	kv := make([]any, 0, 2*len(enc.Fields)+2)
	if e.LoggerName != "" {
		kv = append(kv, "component", e.LoggerName)
	}
	for _, k := range slices.Sorted(maps.Keys(enc.Fields)) {
		kv = append(kv, k, enc.Fields[k])
	}
	c.log.Log(level(e.Level), e.Message, kv...)
	return nil
}

func (c *hclogCore) Sync() error { return nil }

// level maps a zap level to the hclog level its lines are logged at.
func level(l zapcore.Level) hclog.Level {
	switch {
	case l < zapcore.InfoLevel:
		return hclog.Trace
	case l == zapcore.InfoLevel:
		return hclog.Debug
	case l == zapcore.WarnLevel:
		return hclog.Warn
	default:
		return hclog.Error
	}
}
