package server

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A logger name or progress message over its cap is cut on a character
// boundary and says how long it was; one within it is left alone.
func TestCapText(t *testing.T) {
	if got := capText("short", 16); got != "short" {
		t.Errorf("capText(short) = %q", got)
	}
	long := strings.Repeat("é", 3000) // 6000 bytes
	got := capText(long, maxProgress)
	if !utf8.ValidString(got) || !strings.HasSuffix(got, " [truncated: 6000 bytes]") || len(got) > maxProgress+len(" [truncated: 6000 bytes]") {
		t.Errorf("capText of 6000 bytes: %d bytes, ends %q", len(got), got[len(got)-30:])
	}
	if got := capText(strings.Repeat("a", maxLogger+1), maxLogger); !strings.HasPrefix(got, strings.Repeat("a", maxLogger)+" [") {
		t.Errorf("capText at the cap: %q", got[maxLogger-4:])
	}
}
