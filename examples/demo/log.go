package main

import (
	"log/slog"
	"os"
)

// quietLogger keeps the library's info logs out of the demo's table; set
// GRPCMGMT_DEMO_LOG=debug to see every decision.
func quietLogger() *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("GRPCMGMT_DEMO_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
