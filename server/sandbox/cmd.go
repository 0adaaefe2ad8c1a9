package sandbox

// Run starts the target and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// ExitCode is the target's exit status after Wait: 128+n when it was
// killed by signal n, -1 when it did not run.
func (c *Cmd) ExitCode() int {
	if c.cmd.ProcessState == nil {
		return -1
	}
	return c.cmd.ProcessState.ExitCode()
}

// Pid is the launcher's process id (the process group of the tree) on
// Linux, the target's elsewhere.
func (c *Cmd) Pid() int {
	if c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}
