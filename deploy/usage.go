package deploy

import (
	"bufio"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Flag is one flag as a Go program's -h output (flag.PrintDefaults)
// describes it.
type Flag struct {
	// Name is the flag's name, without the leading dash.
	Name string
	// Type is the value's type as PrintDefaults names it ("duration",
	// "int", "string", "float", "uint", "value", ...); "" for a boolean.
	Type string
	// Usage is the help text, lines joined with a space, without the
	// "(default ...)" suffix.
	Usage string
	// Default is the default value PrintDefaults shows, unquoted; "" when
	// it shows none (the zero value).
	Default string
}

var defaultSuffix = regexp.MustCompile(`\s*\(default (.*)\)$`)

// ParseUsage reads the flag list that flag.PrintDefaults writes:
//
//	-name type
//	  	usage text (default "x")
//
// Lines before the first flag ("Usage of server:") and after it that do not
// belong to a flag are ignored. It returns an error when no flag is found.
func ParseUsage(out string) (map[string]Flag, error) {
	flags := map[string]Flag{}
	var cur *Flag
	finish := func() {
		if cur == nil {
			return
		}
		cur.Usage = strings.TrimSpace(cur.Usage)
		if m := defaultSuffix.FindStringSubmatch(cur.Usage); m != nil {
			cur.Usage = strings.TrimSpace(cur.Usage[:len(cur.Usage)-len(m[0])])
			cur.Default = m[1]
			if u, err := strconv.Unquote(m[1]); err == nil {
				cur.Default = u
			}
		}
		flags[cur.Name] = *cur
		cur = nil
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "  -"):
			finish()
			// "  -name type" or, for one-letter names, "  -x type\tusage".
			head, usage, _ := strings.Cut(strings.TrimPrefix(line, "  -"), "\t")
			name, typ, _ := strings.Cut(strings.TrimSpace(head), " ")
			cur = &Flag{Name: name, Type: strings.TrimSpace(typ), Usage: usage}
		case cur != nil && strings.HasPrefix(line, "    \t"):
			cur.Usage += " " + strings.TrimPrefix(line, "    \t")
		default:
			finish()
		}
	}
	finish()
	if len(flags) == 0 {
		return nil, fmt.Errorf("no flags found in usage output %q", out)
	}
	return flags, nil
}

// libraryDefault matches the convention examples/server uses for flags whose
// zero value means "the library's default": "(0: library default 30s)".
var libraryDefault = regexp.MustCompile(`0: library default ([0-9][^ )]*)`)

// DurationValue returns the duration the program uses when it is started
// with value for this flag, or with no value when set is false: the printed
// default, or, where the flag's zero value means "the library default" and
// its usage names that default, the library default.
func (f Flag) DurationValue(value string, set bool) (time.Duration, error) {
	if f.Type != "duration" {
		return 0, fmt.Errorf("-%s is a %q flag, not a duration", f.Name, f.Type)
	}
	if !set {
		value = f.Default
	}
	d := time.Duration(0)
	if value != "" {
		var err error
		if d, err = time.ParseDuration(value); err != nil {
			return 0, fmt.Errorf("-%s=%s: %w", f.Name, value, err)
		}
	}
	if d == 0 {
		if m := libraryDefault.FindStringSubmatch(f.Usage); m != nil {
			ld, err := time.ParseDuration(m[1])
			if err != nil {
				return 0, fmt.Errorf("-%s: library default %q in usage: %w", f.Name, m[1], err)
			}
			return ld, nil
		}
	}
	return d, nil
}

// CheckValue reports whether value parses as the flag's type, the way the
// flag package would parse it.
func (f Flag) CheckValue(value string) error {
	var err error
	switch f.Type {
	case "":
		_, err = strconv.ParseBool(value)
	case "duration":
		_, err = time.ParseDuration(value)
	case "int":
		_, err = strconv.ParseInt(value, 0, strconv.IntSize)
	case "int64":
		_, err = strconv.ParseInt(value, 0, 64)
	case "uint":
		_, err = strconv.ParseUint(value, 0, strconv.IntSize)
	case "uint64":
		_, err = strconv.ParseUint(value, 0, 64)
	case "float":
		_, err = strconv.ParseFloat(value, 64)
	}
	if err != nil {
		return fmt.Errorf("-%s=%s: not a valid %s: %w", f.Name, value, typeName(f.Type), err)
	}
	return nil
}

func typeName(t string) string {
	if t == "" {
		return "bool"
	}
	return t
}

// Args are the flags of one command line, in the -name=value form the
// manifests use.
type Args map[string]string

// ParseArgs splits a container's args into flag names and values. Every
// argument must have the form -name=value (or -name for a boolean, stored
// as "true"): the form that cannot be misread whatever the flag's type.
func ParseArgs(args []string) (Args, error) {
	out := Args{}
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("argument %q: want -name=value", a)
		}
		name, value, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok {
			value = "true"
		}
		if name == "" {
			return nil, fmt.Errorf("argument %q: empty flag name", a)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("flag -%s given twice", name)
		}
		out[name] = value
	}
	return out, nil
}
