// Command guest-agent is PID 1 inside each pod VM (see README.md), and, started as `guest-agent shim`,
// the per-container shim.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "shim" && os.Getpid() == 1 && os.Getppid() == 0 {
		// A shim is PID 1 of its own PID namespace and its parent (the agent) is outside it (ppid 0).
		shimMain()
		return
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "guest-agent: this is the pod VM's init (PID 1); it is not meant to be run by hand")
		os.Exit(2)
	}
	agentMain()
}
