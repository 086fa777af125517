package deploy

import (
	"bytes"
	"flag"
	"testing"
	"time"
)

// printDefaults returns what a real flag.FlagSet prints for -h.
func printDefaults() string {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	var b bytes.Buffer
	fs.SetOutput(&b)
	fs.String("listen", "127.0.0.1:50051", "address to serve gRPC on")
	fs.Duration("max-connection-age-grace", 0, "MAX_CONNECTION_AGE_GRACE (0: library default 30s)")
	fs.Duration("shutdown-timeout", 60*time.Second, "how long a shutdown may take")
	fs.Int("workers", 0, "calls burning CPU at once (0: unbounded)")
	fs.Float64("cpu-threshold", 0.9, "CPU `fraction` that counts as overload\nsecond line of help")
	fs.Bool("verbose", false, "log more")
	fs.Bool("x", true, "one-letter flag")
	_ = fs.Parse([]string{"-h"})
	return b.String()
}

func TestParseUsageReadsFlagPrintDefaults(t *testing.T) {
	flags, err := ParseUsage(printDefaults())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Flag{
		"listen":                   {Name: "listen", Type: "string", Usage: "address to serve gRPC on", Default: "127.0.0.1:50051"},
		"max-connection-age-grace": {Name: "max-connection-age-grace", Type: "duration", Usage: "MAX_CONNECTION_AGE_GRACE (0: library default 30s)"},
		"shutdown-timeout":         {Name: "shutdown-timeout", Type: "duration", Usage: "how long a shutdown may take", Default: "1m0s"},
		"workers":                  {Name: "workers", Type: "int", Usage: "calls burning CPU at once (0: unbounded)"},
		"cpu-threshold":            {Name: "cpu-threshold", Type: "fraction", Usage: "CPU fraction that counts as overload second line of help", Default: "0.9"},
		"verbose":                  {Name: "verbose", Usage: "log more"},
		"x":                        {Name: "x", Usage: "one-letter flag", Default: "true"},
	}
	if len(flags) != len(want) {
		t.Errorf("parsed %d flags, want %d: %+v", len(flags), len(want), flags)
	}
	for name, w := range want {
		if got := flags[name]; got != w {
			t.Errorf("flag %s:\n got %+v\nwant %+v", name, got, w)
		}
	}
}

func TestDurationValue(t *testing.T) {
	flags, err := ParseUsage(printDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag, value string
		set         bool
		want        time.Duration
	}{
		{"shutdown-timeout", "", false, time.Minute},
		{"shutdown-timeout", "40s", true, 40 * time.Second},
		{"max-connection-age-grace", "", false, 30 * time.Second}, // zero means the library default
		{"max-connection-age-grace", "0s", true, 30 * time.Second},
		{"max-connection-age-grace", "10s", true, 10 * time.Second},
	} {
		got, err := flags[tc.flag].DurationValue(tc.value, tc.set)
		if err != nil || got != tc.want {
			t.Errorf("-%s=%q (set %v) = %v, %v; want %v", tc.flag, tc.value, tc.set, got, err, tc.want)
		}
	}
	if _, err := flags["workers"].DurationValue("1", true); err == nil {
		t.Error("DurationValue on an int flag: no error")
	}
	if _, err := flags["shutdown-timeout"].DurationValue("40", true); err == nil {
		t.Error("DurationValue(\"40\"): no error for a duration without a unit")
	}
}

func TestCheckValue(t *testing.T) {
	flags, err := ParseUsage(printDefaults())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		flag, value string
		ok          bool
	}{
		{"shutdown-timeout", "40s", true}, {"shutdown-timeout", "40", false},
		{"workers", "4", true}, {"workers", "four", false},
		{"verbose", "true", true}, {"verbose", "yes", false},
		{"listen", ":50051", true},
	} {
		if err := flags[tc.flag].CheckValue(tc.value); (err == nil) != tc.ok {
			t.Errorf("-%s=%s: %v, want ok=%v", tc.flag, tc.value, err, tc.ok)
		}
	}
}

func TestParseArgs(t *testing.T) {
	got, err := ParseArgs([]string{"-a=1", "--b=x=y", "-c", "-d="})
	if err != nil {
		t.Fatal(err)
	}
	want := Args{"a": "1", "b": "x=y", "c": "true", "d": ""}
	if len(got) != len(want) {
		t.Errorf("ParseArgs = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("ParseArgs[%s] = %q, want %q", k, got[k], v)
		}
	}
	for _, bad := range [][]string{{"value"}, {"-a=1", "-a=2"}, {"-=1"}} {
		if _, err := ParseArgs(bad); err == nil {
			t.Errorf("ParseArgs(%q): no error", bad)
		}
	}
}
