package app

import (
	"flag"
	"fmt"
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
func ParseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
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
