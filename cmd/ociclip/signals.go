package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// signalError is the cancellation cause of a run stopped by a signal.
type signalError struct{ sig syscall.Signal }

func (e *signalError) Error() string {
	if e.sig == syscall.SIGINT {
		return "interrupted"
	}
	return "interrupted by " + signalName(e.sig)
}

// signalName names SIGINT and SIGTERM as shells do in messages.
func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// exitCode is what shells expect of a process stopped by the signal: 128 +
// its number (130 for SIGINT, 143 for SIGTERM).
func (e *signalError) exitCode() int { return 128 + int(e.sig) }

// signalContext returns a context that the first SIGINT or SIGTERM cancels
// with a *signalError cause, so that the command stops cleanly (no output
// is written) and run reports it. A second signal gets the default action:
// it ends the process at once. stop releases the signals.
func signalContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			signal.Reset(os.Interrupt, syscall.SIGTERM)
			sig, _ := s.(syscall.Signal)
			cancel(&signalError{sig: sig})
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel(nil)
	}
}

// interrupted reports a command stopped by a signal: when ctx was
// cancelled by one and the command failed, it prints "ociclip CMD:
// interrupted" and returns the shell's exit code for the signal.
func interrupted(ctx context.Context, err error, stderr io.Writer, cmd string) (int, bool) {
	var se *signalError
	if err == nil || !errors.As(context.Cause(ctx), &se) {
		return 0, false
	}
	fmt.Fprintf(stderr, "ociclip %s: %v\n", cmd, se)
	return se.exitCode(), true
}
