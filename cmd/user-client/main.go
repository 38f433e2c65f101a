// Command user-client runs the demo scenario against user.service and order.service and
// prints each call's result, trace id and Jaeger link. It exits 1 if any call did not end as
// the scenario expects.
package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/demo"
	"github.com/go-micro-otel/reference/internal/telemetry"
)

func main() { os.Exit(run()) }

func run() int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tel, err := telemetry.Setup(ctx, "user-client")
	if err != nil {
		fmt.Fprintln(os.Stderr, "user-client:", err)
		return 1
	}
	reg, err := app.RegistryFromEnv()
	if err != nil {
		fmt.Fprintln(os.Stderr, "user-client:", err)
		return 2
	}
	jaeger := strings.TrimSuffix(cmp.Or(os.Getenv("JAEGER_UI_URL"), "http://localhost:16686"), "/")
	runID := fmt.Sprintf("%d", time.Now().UnixNano())

	steps := demo.Run(ctx, tel.TracerProvider.Tracer("user-client"), app.NewClient(reg, tel), runID)
	code := 0
	for _, s := range steps {
		mark := "ok"
		if !s.OK() {
			mark, code = "FAILED", 1
		}
		fmt.Printf("%-32s %-6s %s\n    trace %s  %s/trace/%s\n", s.Name, mark, s.Summary, s.TraceID, jaeger, s.TraceID)
	}
	if err := tel.Shutdown(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "user-client:", err)
	}
	return code
}
