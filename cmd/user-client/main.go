// Command user-client runs the demo scenario against user.service and order.service and
// prints each call's result, trace id and Jaeger link. It exits 1 if any call did not end as
// the scenario expects.
//
//	-trace-tree  then wait for the "create user" trace to reach Jaeger and print it as a tree
//	-json        print one JSON object a step instead, for scripts and tests
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-micro-otel/reference/internal/app"
	"github.com/go-micro-otel/reference/internal/demo"
	"github.com/go-micro-otel/reference/internal/guard"
	"github.com/go-micro-otel/reference/internal/jaeger"
	"github.com/go-micro-otel/reference/internal/telemetry"
)

func main() { os.Exit(run()) }

func run() int {
	tree := flag.Bool("trace-tree", false, "wait for the create-user trace in Jaeger and print it")
	asJSON := flag.Bool("json", false, "print one JSON object a step")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	jaegerURL := strings.TrimSuffix(cmp.Or(os.Getenv("JAEGER_UI_URL"), "http://localhost:16686"), "/")
	runID := fmt.Sprintf("%d", time.Now().UnixNano())

	c := guard.ClientWrapper(os.Getenv("AUTH_TOKEN"))(app.NewClient(reg, tel))
	steps := demo.Run(ctx, tel.TracerProvider.Tracer("user-client"), c, runID)
	code := 0
	for _, s := range steps {
		if !s.OK() {
			code = 1
		}
		if *asJSON {
			printJSON(s)
		} else {
			printStep(s, jaegerURL)
		}
	}
	// Flush before looking for the trace in Jaeger: the client's own spans are part of it.
	if err := tel.Shutdown(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "user-client:", err)
	}
	if *tree && code == 0 {
		// Inside docker compose the query API is reached by another name than the UI's link.
		queryURL := cmp.Or(os.Getenv("JAEGER_QUERY_URL"), jaegerURL)
		if err := printTree(ctx, queryURL, steps[0]); err != nil {
			fmt.Fprintln(os.Stderr, "user-client:", err)
			return 1
		}
	}
	return code
}

func printStep(s demo.Step, jaegerURL string) {
	mark := "ok"
	if !s.OK() {
		mark = "FAILED"
	}
	fmt.Printf("%-32s %-6s %s\n    trace %s  %s/trace/%s\n", s.Name, mark, s.Summary, s.TraceID, jaegerURL, s.TraceID)
}

func printJSON(s demo.Step) {
	out := struct {
		Name    string `json:"name"`
		TraceID string `json:"trace_id"`
		OK      bool   `json:"ok"`
		Code    int32  `json:"code,omitempty"`
		Summary string `json:"summary"`
	}{s.Name, s.TraceID.String(), s.OK(), s.Code(), s.Summary}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}

// printTree waits until the create-user trace in Jaeger holds the event's processing, which
// arrives last, then prints it.
func printTree(ctx context.Context, queryURL string, s demo.Step) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Whole: both services' last spans there, and no span waiting for its parent.
	t, err := jaeger.New(queryURL).WaitTrace(ctx, s.TraceID.String(), func(t *jaeger.Trace) bool {
		return len(t.Find("user.service", "UPDATE outbox", jaeger.KindClient)) > 0 &&
			len(t.Find("order.service", "INSERT accounts", jaeger.KindClient)) > 0 && t.Connected()
	})
	if err != nil {
		return fmt.Errorf("reading trace %s back from Jaeger: %w", s.TraceID, err)
	}
	fmt.Printf("\nThe %q trace, read back from Jaeger (%d spans):\n", s.Name, len(t.Spans))
	t.WriteTree(os.Stdout)
	return nil
}
