// Package procgroup runs a test server as the leader of a process group of
// its own, so that it and every process it forks can be stopped together,
// and so that it dies with the test binary if the binary dies first.
package procgroup

import (
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// Group is a started process group. Its methods are safe for concurrent
// use.
type Group struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts cmd as the leader of a new process group that gets SIGTERM
// when the test binary dies. Other fields of cmd.SysProcAttr (credentials,
// namespaces) are kept. onExit, when not nil, runs once the leader has
// exited and been reaped (to close its log, say).
func Start(cmd *exec.Cmd, onExit func()) (*Group, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	g := &Group{cmd: cmd, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig follows the forking thread: keep this goroutine on it
		// while the server runs, so that no other goroutine can end it.
		// Unlock before leaving: a goroutine that exits locked ends its
		// thread, and with it every Pdeathsig child that thread forked
		// before, such as a keyringtest daemon.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		if onExit != nil {
			onExit()
		}
		close(g.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return g, nil
}

// Pid is the leader's process id, which is also the group's id.
func (g *Group) Pid() int { return g.cmd.Process.Pid }

// Done is closed once the leader has exited.
func (g *Group) Done() <-chan struct{} { return g.done }

// Stop sends SIGTERM to the whole group, SIGKILL to what is left after
// five seconds, and returns once no process of the group remains (children
// may outlive the leader by a moment). Safe to call after the leader
// exited.
func (g *Group) Stop() {
	pgid := g.Pid()
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-g.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-g.done
	}
	for i := 0; i < 250 && syscall.Kill(-pgid, 0) == nil; i++ {
		if i == 100 {
			syscall.Kill(-pgid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
