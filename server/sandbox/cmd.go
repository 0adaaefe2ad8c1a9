package sandbox

// Run starts the target and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Pid is the launcher's process id (the process group of the tree) on
// Linux, the target's elsewhere.
func (c *Cmd) Pid() int {
	if c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}
