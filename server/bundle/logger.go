package bundle

import (
	"fmt"
	"log/slog"

	"github.com/open-policy-agent/opa/v1/logging"
)

// opaLogger hands OPA's log lines to slog (stderr, redacted), never to
// stdout.
type opaLogger struct {
	log   *slog.Logger
	level logging.Level
}

var _ logging.Logger = (*opaLogger)(nil)

func (l *opaLogger) Debug(f string, a ...any) { l.log.Debug(fmt.Sprintf(f, a...)) }
func (l *opaLogger) Info(f string, a ...any)  { l.log.Info(fmt.Sprintf(f, a...)) }
func (l *opaLogger) Warn(f string, a ...any)  { l.log.Warn(fmt.Sprintf(f, a...)) }
func (l *opaLogger) Error(f string, a ...any) { l.log.Error(fmt.Sprintf(f, a...)) }

func (l *opaLogger) WithFields(fields map[string]any) logging.Logger {
	args := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		args = append(args, k, v)
	}
	return &opaLogger{log: l.log.With(args...), level: l.level}
}

func (l *opaLogger) GetLevel() logging.Level      { return l.level }
func (l *opaLogger) SetLevel(level logging.Level) { l.level = level }
