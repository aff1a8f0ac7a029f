package testenv

import (
	"os"
	"testing"
)

// ChromiumPath is where Debian's chromium package installs the browser that the page tests drive
// through playwright-core (.ci/run installs it).
const ChromiumPath = "/usr/bin/chromium"

// ChromiumArgs are the flags every headless Chromium of the tests starts with: no GPU, no sandbox
// (tests run as root in a container), and nothing that reaches out to the network by itself. Each
// run also gets a fresh user-data directory.
func ChromiumArgs() []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
	}
}

// Chromium returns the path of the headless browser for tests that look at a page as a person
// would. Unlike the Node peers, the browser is a system package and not part of the npm install,
// so a machine without it skips those tests (with one line saying how to install it) instead of
// failing.
func Chromium(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		t.Skipf("testenv: chromium is not installed at %s; run: apt-get install -y chromium", ChromiumPath)
	}
	return ChromiumPath
}
