package main

import (
	"log/slog"
	"runtime/debug"
)

// The garbage collector's settings for serve. Each argon2id computation
// allocates its buffer (19 MiB by default) afresh and drops it when it
// ends, so password changes at the hash limit allocate over a GiB a
// second; with Go's defaults (GOGC=100) the heap's goal is about twice
// what is live, the collector then runs every two or three hashes, and a
// change spent ~3 ms of CPU in it (docs/PERFORMANCE.md). A larger GOGC
// collects once per ~9 hashes' worth of garbage; the soft memory limit
// keeps the heap bounded however much is live: the hash buffers that may
// be in flight at once plus gcBaseLimit for everything else.
const (
	gcPercent   = 400
	gcBaseLimit = 192 << 20
)

// tuneRuntime is false in this package's tests, whose servers run in the
// test's own process: the settings would be the whole process's.
var tuneRuntime = true

// gcSettings returns the GC percent and soft memory limit (bytes) for a
// server whose hashers hold at most hashMemory bytes at once, or ok
// false when the operator set GOGC or GOMEMLIMIT: the Go runtime has
// applied theirs, and serve leaves both alone.
func gcSettings(lookupEnv func(string) (string, bool), hashMemory uint64) (percent int, limit int64, ok bool) {
	if _, set := lookupEnv("GOGC"); set {
		return 0, 0, false
	}
	if _, set := lookupEnv("GOMEMLIMIT"); set {
		return 0, 0, false
	}
	return gcPercent, gcBaseLimit + int64(hashMemory), true
}

// tuneGC applies gcSettings to this process and says what it chose.
func tuneGC(logger *slog.Logger, lookupEnv func(string) (string, bool), hashMemory uint64) {
	percent, limit, ok := gcSettings(lookupEnv, hashMemory)
	if !ok {
		logger.Info("garbage collector as set by GOGC or GOMEMLIMIT")
		return
	}
	debug.SetGCPercent(percent)
	debug.SetMemoryLimit(limit)
	logger.Info("garbage collector tuned for argon2id's buffers (GOGC or GOMEMLIMIT overrides)", "gogc", percent, "memory_limit_mib", limit>>20)
}
