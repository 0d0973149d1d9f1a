package main

import (
	"testing"

	"go.uber.org/goleak"
)

// The command's end-to-end tests, which run the binary, are in ../e2e; the
// tests here check what serve builds from the settings.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
