package dynalitetest

// Kill ends this process's dynalite as a crash would, and waits until
// Start can tell.
func Kill() error {
	server.Lock()
	p, died := server.proc, server.died
	server.Unlock()
	if err := p.Kill(); err != nil {
		return err
	}
	<-died
	return nil
}
