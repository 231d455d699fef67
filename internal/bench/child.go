package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/resetd/resetd/internal/config"
)

// startChild prepares db in-process (institution, client, users: the
// same steps as startInProcess and seedStore), closes it, and starts
// `resetd serve` on it as a child process, so that the server's own CPU
// time and memory can be read from /proc apart from the load generator's
// and the SMTP server's.
func (t *target) startChild(ctx context.Context, db, dir string) (stop func(), err error) {
	// The child listens on the address the links were set up for.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()

	prep, err := t.startInProcessOn(ctx, db, addr, false)
	if err != nil {
		return nil, err
	}
	t.cfg.progress("seeding %d users…", t.cfg.Users)
	start := time.Now()
	seeded, err := t.seedStore(ctx)
	seeded.Seconds = time.Since(start).Seconds()
	prep()
	if err != nil {
		return nil, err
	}
	t.seeded = &seeded
	t.app = nil

	args := append(append([]string(nil), t.cfg.ServerCommand[1:]...),
		"serve", "--db", db, "--addr", addr, "--smtp", t.sink.url(), "--log-level", "warn", "--no-migrate")
	if t.cfg.QueueWorkers > 0 {
		args = append(args, "--queue-workers", strconv.Itoa(t.cfg.QueueWorkers))
	}
	if t.cfg.CPUProfile != "" {
		args = append(args, "--cpuprofile", t.cfg.CPUProfile)
	}
	cmd := exec.Command(t.cfg.ServerCommand[0], args...)
	// The child takes its settings from these flags only: an operator's
	// RESETD_* variables must not point the benchmark elsewhere.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "RESETD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if t.cfg.SecretKey != "" {
		cmd.Env = append(cmd.Env, "RESETD_SECRET_KEY="+t.cfg.SecretKey)
	} // else the trial key the preparation stored in db
	logPath := filepath.Join(dir, "server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("bench: start server: %w", err)
	}
	// Ends when the child does: stop below makes sure it does.
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
	}
	t.base, t.rssPID = config.BaseURL("http://"+addr), cmd.Process.Pid
	if err := t.awaitReady(ctx, exited); err != nil {
		stop()
		return nil, fmt.Errorf("%w\n%s", err, tail(logPath, 20))
	}
	return stop, nil
}

// awaitReady polls /readyz until the child answers 200.
func (t *target) awaitReady(ctx context.Context, exited <-chan error) error {
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("bench: server exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		resp, err := c.Get(t.base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return errors.New("bench: server not ready within 60 s")
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// processCPU is the user+system CPU time pid has used so far, from
// /proc/PID/stat (10 ms resolution; a flow's thousands of requests make
// that negligible).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("bench: unreadable /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state is field 3, utime 14, stime 15.
	if len(f) < 13 {
		return 0, errors.New("bench: short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}
