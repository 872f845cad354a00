package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent makes a child get SIGTERM when the benchmark dies, so no
// emulator or akvsync process outlives a killed run.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
