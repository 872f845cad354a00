// Command hashpw prints an argon2id hash of a password for the
// password_hash field of the akvsync users file. It reads the password from
// the first line of standard input, so it does not end up in shell history:
//
//	go run ./cmd/hashpw            # type the password, then Enter
//	printf '%s\n' "$PW" | go run ./cmd/hashpw
//
// With -generate it makes up a random password, prints it on standard error
// and its hash on standard output.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/akvsync/akvsync/internal/auth"
)

func main() {
	generate := flag.Bool("generate", false, "generate a random password (printed on stderr)")
	flag.Parse()
	if err := run(*generate); err != nil {
		fmt.Fprintln(os.Stderr, "hashpw:", err)
		os.Exit(1)
	}
}

func run(generate bool) error {
	var pw string
	if generate {
		p, err := auth.GeneratePassword()
		if err != nil {
			return err
		}
		pw = p
		fmt.Fprintln(os.Stderr, "password:", pw)
	} else {
		fmt.Fprint(os.Stderr, "password: ")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && line == "" {
			return fmt.Errorf("read password: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	}
	h, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	fmt.Println(h)
	return nil
}
