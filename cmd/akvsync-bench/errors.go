package main

import "errors"

// errProcessDied wraps the exit of an emulator or akvsync process while a
// figure still needed it; the error names the process's log.
var errProcessDied = errors.New("a process died")
