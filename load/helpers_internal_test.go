package load

import (
	"fmt"
	"io"
	"log/slog"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func typeName(v any) string { return fmt.Sprintf("%T", v) }
