package wrapper

// ScopeName is the instrumentation scope of every span this package starts.
const ScopeName = "github.com/go-micro-otel/reference/internal/wrapper"

// Version is the instrumentation version reported with ScopeName.
func Version() string { return "0.1.0" }
