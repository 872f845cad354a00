// Package cli is what akvsync's service binaries (cmd/api, cmd/worker)
// share on their command line: flags that also read AKVSYNC_ environment
// variables, and the logger. Only cmd/ may import it.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// EnvPrefix prefixes the environment variable of every flag.
const EnvPrefix = "AKVSYNC_"

// EnvName is the environment variable of a flag: AKVSYNC_ and the flag
// name upper-cased with dashes as underscores.
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// ParseFlags parses args, then sets each flag not given on the command
// line from its environment variable (EnvName), when that is set.
//
// -h or --help prints the usage to usage once and returns flag.ErrHelp
// (the command exits 0). Any other problem is returned, not printed, so
// the command prints it once: an unknown or malformed flag, and any
// positional argument (the commands take flags only, and the flag package
// would silently ignore every flag after the first positional argument).
func ParseFlags(fs *flag.FlagSet, args []string, usage io.Writer) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fmt.Fprintf(usage, "Usage of %s (every flag also reads %s<FLAG_NAME>):\n", fs.Name(), EnvPrefix)
			fs.PrintDefaults()
			return flag.ErrHelp
		}
		return fmt.Errorf("%w (see --help)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: %s takes flags only (see --help)", fs.Arg(0), fs.Name())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(EnvName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s: %w", EnvName(f.Name), e)
			}
		}
	})
	return err
}
